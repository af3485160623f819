"""Huge pages for XLA's CPU temporaries, through glibc's malloc tunable.

Each CPU training step, XLA mallocs its temporaries (146 MB for mnist_attn),
glibc maps that as fresh memory and unmaps it when the step ends, and the
next step takes a page fault on every 4 KiB page it touches: 37,000 faults a
step. Where the kernel hands out transparent huge pages only when asked (THP
mode 'madvise', common on servers), glibc's `glibc.malloc.hugetlb=1` tunable
asks: the faults fall to about 630 a step and the step gets faster
(docs/performance.md). glibc reads tunables once, when the process starts, so
only the environment that launches Python can set it; the trainer and the
benchmark say when it is missing.
"""
import os

HUGE_PAGE_TUNABLE = 'glibc.malloc.hugetlb=1'
THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled'


def thp_mode(path=THP_MODE_FILE):
  """The kernel's THP mode ('always', 'madvise', 'never'), or None if unknown.

  The file lists every mode and brackets the one in force:
  'always [madvise] never'.
  """
  try:
    with open(path, encoding='ascii') as modes:
      words = modes.read().split()
  except OSError:  # not Linux, or no THP support
    return None
  for word in words:
    if word.startswith('[') and word.endswith(']'):
      return word[1:-1]
  return None


def huge_pages_requested(environ=None):
  environ = os.environ if environ is None else environ
  return HUGE_PAGE_TUNABLE in environ.get('GLIBC_TUNABLES', '').split(':')


def huge_page_hint(mode, environ=None):
  """Advice to set the tunable where it would help and is unset, else None."""
  if mode != 'madvise' or huge_pages_requested(environ):
    return None
  return (f'CPU steps run faster with GLIBC_TUNABLES={HUGE_PAGE_TUNABLE} in '
          'the environment: this kernel gives huge pages only on request '
          '(docs/performance.md)')
