"""The huge-page check behind the trainer's and the benchmark's hint."""
import pytest

from draw_jax import host_memory


@pytest.mark.parametrize('listing, mode', [
    ('always [madvise] never\n', 'madvise'),
    ('[always] madvise never\n', 'always'),
    ('always madvise [never]\n', 'never'),
    ('always madvise never\n', None),
])
def test_thp_mode_is_the_bracketed_word(tmp_path, listing, mode):
  path = tmp_path / 'enabled'
  path.write_text(listing)
  assert host_memory.thp_mode(str(path)) == mode


def test_thp_mode_without_the_file_is_unknown(tmp_path):
  assert host_memory.thp_mode(str(tmp_path / 'missing')) is None


@pytest.mark.parametrize('tunables, requested', [
    ('glibc.malloc.hugetlb=1', True),
    ('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', True),
    ('glibc.malloc.hugetlb=0', False),
    ('glibc.malloc.hugetlb=10', False),
    ('', False),
])
def test_huge_pages_requested_reads_the_colon_separated_tunables(
    tunables, requested):
  environ = {'GLIBC_TUNABLES': tunables}
  assert host_memory.huge_pages_requested(environ) is requested


def test_hint_only_where_huge_pages_come_on_request_and_are_not_asked_for():
  unset, asked = {}, {'GLIBC_TUNABLES': host_memory.HUGE_PAGE_TUNABLE}
  hint = host_memory.huge_page_hint('madvise', unset)
  assert host_memory.HUGE_PAGE_TUNABLE in hint
  assert host_memory.huge_page_hint('madvise', asked) is None
  # 'always' gives huge pages unasked; 'never' and unknown cannot give them.
  for mode in ('always', 'never', None):
    assert host_memory.huge_page_hint(mode, unset) is None
