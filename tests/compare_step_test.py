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


def _run_bare(data_dir, *extra):
  """compare_step.py at smoke size with only these flags chosen."""
  env = dict(os.environ, DRAW_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  return subprocess.run(
      [sys.executable, str(REPO / 'scripts' / 'compare_step.py'),
       '--config=configs/smoke.py', '--config.model.T=3', '--batch', '8',
       '--warmup', '1', '--steps', '1', *extra],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _run(before, data_dir, *extra):
  return _run_bare(data_dir, '--module=attention', f'--before={before}',
                   *extra)


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


@pytest.mark.parametrize('file_name, flax_kernels', [
    ('flax_lstm_cell.py', {'ii', 'if_', 'ig', 'io', 'hi', 'hf', 'hg', 'ho'}),
    ('flax_optimized_lstm_cell.py', {'dense_i', 'dense_h'}),
])
def test_flax_lstm_cells_stand_in_for_the_fused_cell(file_name, flax_kernels,
                                                     data_dir):
  """scripts/alternatives/: the README's LSTM-cell lever, Flax's cells."""
  before = str(REPO / 'scripts' / 'alternatives' / file_name)
  built = compare_step.build_both(_smoke_config(data_dir), ['model'], [before])
  encoder = {version: built[version][0].state['params']['encoder']
             for version in built}
  assert set(encoder['before']['cell']) == flax_kernels
  assert set(encoder['after']) == {'gates'}
  times = compare_step.alternate(built, warmup=1, steps=1, rounds=1)
  assert all(len(seconds) == 1 for seconds in times.values())


def test_before_config_changes_only_the_before_step(data_dir):
  config = _smoke_config(data_dir)
  built = compare_step.build_both(config, [], [], ['model.enc_size=16'])
  kernels = {version: built[version][0].state['params']['encoder']['gates']
             ['kernel'] for version in built}
  assert kernels['before'].shape[-1] == 4 * 16
  assert kernels['after'].shape[-1] == 4 * config.model.enc_size != 4 * 16


def test_config_settings_are_literals_or_bare_words(data_dir):
  config = _smoke_config(data_dir)
  changed = compare_step.config_with(
      config, ['model.scan_unroll=2', 'model.compute_dtype=bfloat16'])
  assert changed.model.scan_unroll == 2
  assert changed.model.compute_dtype == 'bfloat16'
  assert config.model.scan_unroll == 1
  assert config.model.compute_dtype == 'float32'


@pytest.mark.parametrize('setting, message', [
    ('model.remat', 'is not name=value'),
    ('model.no_such_field=1', 'no_such_field'),
    ('model.scan_unroll=fast', 'scan_unroll'),
])
def test_a_bad_config_setting_is_named(setting, message, data_dir):
  with pytest.raises(ValueError, match=message):
    compare_step.config_with(_smoke_config(data_dir), [setting])


def test_before_xla_compiles_only_the_before_step_with_the_options(data_dir):
  # YNNPACK, XLA's CPU library for the matmuls, turned off for "before".
  built = compare_step.build_both(_smoke_config(data_dir), [], [], (),
                                  ['xla_cpu_experimental_ynn_fusion_type='])
  ynn_fusions = {version: built[version][2].as_text().count('__ynn_fusion')
                 for version in built}
  assert ynn_fusions['before'] == 0 < ynn_fusions['after'], ynn_fusions


def test_settings_parse_as_xla_flags_and_python_literals():
  assert compare_step.xla_options(
      ['a=true', 'b=false', 'c=512', 'd=CPU_SCHEDULER_TYPE_DEFAULT', 'e=',
       'f=True']) == {
           'a': True, 'b': False, 'c': 512, 'd': 'CPU_SCHEDULER_TYPE_DEFAULT',
           'e': '', 'f': True}


def test_an_unknown_xla_option_is_named(data_dir):
  completed = _run_bare(data_dir, '--before_xla=xla_no_such_option=1')
  assert completed.returncode != 0
  assert '--before_xla' in completed.stderr
  assert 'xla_no_such_option' in completed.stderr


def test_something_to_compare_is_asked_for(data_dir):
  completed = _run_bare(data_dir)
  assert completed.returncode != 0
  assert ('give --module and --before, --before_config or --before_xla' in
          completed.stderr)
