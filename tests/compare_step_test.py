"""scripts/compare_step.py: two versions of a module timed in one process.

No test asserts a time: times depend on the machine and its load.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from configs import smoke
from draw_jax import attention
from draw_jax import model as draw_model
import script_modules

REPO = pathlib.Path(__file__).resolve().parents[1]
compare_step = script_modules.load('compare_step')


def _run(before, data_dir, *extra):
  env = dict(os.environ, DRAW_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  return subprocess.run(
      [sys.executable, str(REPO / 'scripts' / 'compare_step.py'),
       '--config=configs/smoke.py', '--config.model.T=3', '--batch', '8',
       '--module=attention', f'--before={before}', '--warmup', '1',
       '--steps', '1', *extra],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _module_copy(tmp_path, module_name, failing_function=None):
  """A copy of draw_jax/<module_name>.py; failing_function, if given, raises."""
  text = (REPO / 'draw_jax' / f'{module_name}.py').read_text()
  if failing_function:
    text += (f'\n\ndef {failing_function}(*args):\n'
             f'  raise RuntimeError("old {failing_function}")\n')
  path = tmp_path / f'{module_name}_before.py'
  path.write_text(text)
  return str(path)


def _smoke_config(data_dir):
  config = smoke.get_config()
  config.data.dir = data_dir
  return config


def test_times_both_versions_of_the_module(tmp_path, data_dir):
  completed = _run(_module_copy(tmp_path, 'attention'), data_dir,
                   '--rounds', '2')
  assert completed.returncode == 0, completed.stderr[-4000:]
  line = completed.stdout.strip().splitlines()[-1]
  match = re.fullmatch(
      r'before ([\d.]+) images/s \(([\d.]+) ms\); after ([\d.]+) images/s '
      r'\(([\d.]+) ms\); after/before ([\d.]+) over 2 steps each', line)
  assert match, line
  assert all(float(number) > 0 for number in match.groups())


def test_a_missing_before_file_is_named(tmp_path, data_dir):
  completed = _run(tmp_path / 'absent.py', data_dir)
  assert completed.returncode != 0
  assert 'absent.py' in completed.stderr and 'not a file' in completed.stderr


def test_the_module_gets_its_definitions_back_when_the_build_fails(
    tmp_path, data_dir):
  before = _module_copy(tmp_path, 'attention', failing_function='write')
  definitions = compare_step.module_definitions(attention)
  with pytest.raises(RuntimeError, match='old write'):
    compare_step.build_both(_smoke_config(data_dir), ['attention'], [before])
  assert compare_step.module_definitions(attention) == definitions
  assert attention.write is definitions['write']


def test_two_modules_swap_together_and_both_come_back(tmp_path, data_dir):
  befores = [_module_copy(tmp_path, 'attention'),
             _module_copy(tmp_path, 'model', failing_function='rematerialised')]
  definitions = [compare_step.module_definitions(module)
                 for module in (attention, draw_model)]
  with pytest.raises(RuntimeError, match='old rematerialised'):
    compare_step.build_both(_smoke_config(data_dir), ['attention', 'model'],
                            befores)
  assert [compare_step.module_definitions(module)
          for module in (attention, draw_model)] == definitions


def test_one_file_per_module_is_asked_for(tmp_path, data_dir):
  completed = _run(tmp_path / 'a.py', data_dir, '--module=attention,model')
  assert completed.returncode != 0
  assert '2 modules but 1 --before files' in completed.stderr


def test_definitions_are_the_ones_the_module_makes():
  definitions = compare_step.module_definitions(attention)
  assert {'attention_params', 'filterbank', 'read', 'write',
          'AttentionParams'} <= set(definitions)
  assert 'NamedTuple' not in definitions and 'jnp' not in definitions
