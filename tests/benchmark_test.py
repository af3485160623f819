"""scripts/benchmark.py at smoke size, as reproduce_on_gpu.sh runs it; its FLOPs;
and every shipped config through it at a tiny size.

No test asserts a time: times depend on the machine and its load.
"""
import dataclasses
import importlib
import json
import math
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

from configs import cluttered_mnist_cls
from configs import mnist_attn
from configs import mnist_noattn
from configs import smoke
from draw_jax import host_memory
from draw_jax import settings
from draw_jax import sweep
from draw_jax import train
import data_files
import script_modules

REPO = pathlib.Path(__file__).resolve().parents[1]
# reproduce_on_gpu.sh --smoke trains on this many examples.
GPU_SMOKE_EXAMPLES = 64

benchmark = script_modules.load('benchmark')

# Every configs/*.py on disk, so that a config added later is covered too;
# a sweep file (get_sweep) lists points of a config rather than being one.
SHIPPED_FILES = sorted(path.stem for path in (REPO / 'configs').glob('*.py')
                       if path.stem != '__init__')
SHIPPED_MODULES = {name: importlib.import_module(f'configs.{name}')
                   for name in SHIPPED_FILES}
SHIPPED_CONFIGS = [name for name, module in SHIPPED_MODULES.items()
                   if hasattr(module, 'get_config')]
SWEEP_FILES = [name for name, module in SHIPPED_MODULES.items()
               if hasattr(module, 'get_sweep')]


@pytest.fixture(scope='module')
def gpu_script_out(tmp_path_factory, data_dir):
  """OUT of scripts/reproduce_on_gpu.sh --smoke: it runs the benchmark first."""
  out = tmp_path_factory.mktemp('gpu_script') / 'out'
  env = dict(os.environ, DRAW_DATA_DIR=data_dir, JAX_PLATFORMS='cpu',
             JAX_NUMPY_RANK_PROMOTION='raise',
             GLIBC_TUNABLES=host_memory.HUGE_PAGE_TUNABLE)
  completed = subprocess.run(
      ['bash', 'scripts/reproduce_on_gpu.sh', '--smoke', str(out), '0.2'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
  return out


def test_gpu_script_cpu_path_brings_back_its_files(gpu_script_out):
  out = gpu_script_out
  files = sorted(path.name for path in out.iterdir())
  assert files == ['benchmark.json', 'eval.json', 'log.txt',
                   'pretrained_mnist_attn.tar.gz', 'samples.png', 'timing.json']
  assert all((out / name).stat().st_size < 16 << 20 for name in files)
  timing = json.loads((out / 'timing.json').read_text())
  assert timing['epochs'] == 2 and timing['compile_sec'] > 0
  assert timing['training_images_per_sec_median'] > 0
  assert json.loads((out / 'eval.json').read_text())['step'] == 8
  with tarfile.open(out / 'pretrained_mnist_attn.tar.gz') as tar:
    names = tar.getnames()
    metadata = json.load(tar.extractfile('mnist_attn/pretrained.json'))
  assert any(name.startswith('mnist_attn/checkpoints/') for name in names)
  assert metadata['test_subset_examples'] == 64  # all of the smoke test split


def test_last_line_is_json_with_every_key_positive_and_finite(gpu_script_out):
  log = (gpu_script_out / 'log.txt').read_text()
  assert 'train:' in log and 'compile:' in log  # readable lines come first
  result = json.loads((gpu_script_out / 'benchmark.json').read_text())
  numeric_keys = [key for key in benchmark.REQUIRED_KEYS
                  if key not in ('backend', 'config')] + ['iw4_images_per_sec']
  missing = sorted((set(numeric_keys) | {'backend', 'config'}) - set(result))
  assert not missing
  for key in numeric_keys:
    value = result[key]
    assert isinstance(value, (int, float)) and not isinstance(value, bool), key
    assert math.isfinite(value) and value > 0, (key, value)
  assert math.isfinite(result['final_train_loss'])
  assert result['backend'] == 'cpu'
  assert result['device_peak_mb'] is None  # the CPU backend reports no stats
  assert result['config'].startswith('configs/smoke.py:batch=16,')
  # The run's glibc setting is recorded beside its figures.
  assert result['glibc_huge_pages'] is True
  assert result['thp_mode'] == host_memory.thp_mode()
  # The script's config string (batch=16 on smoke's T = 4) reaches the step.
  assert (result['T'], result['batch']) == (4, 16)
  assert result['train_gflops_per_image'] > result[
      'train_gflops_per_image_loop_body_once']


def test_hand_count_of_the_paper_models():
  attention = settings.parse(mnist_attn.get_config()).model
  # Forward FLOPs of one step: encoder gates 2*520*1024 = 1,064,960; decoder
  # gates 2*356*1024 = 729,088; posterior 2*256*200 = 102,400; write patch
  # 2*256*25 = 12,800; two attention heads 2*2*256*5 = 5,120; read
  # 2*2*28*28*2 + 2*2*2*28*2 = 6,720; write 2*28*5*5 + 2*28*5*28 = 9,240.
  assert benchmark.hand_count_train_flops(attention) == 3 * 64 * 1_930_328
  no_attention = settings.parse(mnist_noattn.get_config()).model
  # Encoder gates 2*(1568+256+256)*1024 = 4,259,840; decoder 729,088;
  # posterior 102,400; write 2*256*784 = 401,408.
  assert benchmark.hand_count_train_flops(no_attention) == 3 * 64 * 5_492_736


@pytest.fixture(scope='module')
def smoke_flops(gpu_script_out, data_dir):
  """XLA's counts for the GPU script's smoke model, and a fully unrolled count.

  The benchmark's own configuration: its two compiles come from the cache.
  """
  config_file, arg = json.loads(
      (gpu_script_out / 'benchmark.json').read_text())['config'].split(':', 1)
  assert config_file == 'configs/smoke.py'
  config = smoke.get_config(arg)
  config.data.update(dir=data_dir, max_examples=GPU_SMOKE_EXAMPLES)
  run = settings.parse(config)
  training, splits = benchmark.build_training(run)
  inputs = benchmark.step_inputs(training)
  compiled, _, _ = benchmark.compile_step(training.train_step, training.state,
                                          inputs)
  counts = benchmark.xla_train_flops(run, training, splits, compiled)
  no_loop = dataclasses.replace(run, model=dataclasses.replace(
      run.model, scan_unroll=run.model.T))  # no loop left at all
  fully_unrolled = train.build_training(no_loop, splits)
  unrolled = benchmark.cost_flops(fully_unrolled.train_step.lower(
      training.state, *inputs).compile())
  return training, counts, unrolled, run.train.batch_size


def test_xla_count_holds_every_time_step(smoke_flops):
  training, counts, unrolled, _ = smoke_flops
  T = training.model_config.T
  # XLA counts a rolled loop's body once; the correction adds the other T - 1.
  assert counts.per_time_step > 0
  assert counts.total == pytest.approx(counts.rolled +
                                       (T - 1) * counts.per_time_step)
  # A step with no loop left (so nothing to correct) agrees to 5%; fully
  # unrolled, XLA stacks the per-step outputs with copies a loop avoids.
  assert counts.total == pytest.approx(unrolled, rel=0.05)


def test_hand_count_within_2x_of_xla(smoke_flops):
  """Within 0.5x..2x: XLA also counts elementwise work the hand count omits.

  That is the LSTM gate arithmetic, sigmoid(canvas) and the error image over
  all 784 pixels, the filterbank exponentials and normalisers, the loss and
  KL, and per step (not per image) the Adam update, spread over only 16
  images here; so XLA's count is the larger.
  """
  training, counts, _, batch = smoke_flops
  draw_config = training.model_config
  hand = benchmark.hand_count_train_flops(draw_config)
  per_step_ratio = counts.per_time_step / batch / (hand / draw_config.T)
  assert 0.5 < per_step_ratio < 2, per_step_ratio
  total_ratio = counts.total / batch / hand
  assert 1.0 < total_ratio < 2, total_ratio


def test_hand_count_of_the_paper_classifier():
  classifier_config = settings.parse(cluttered_mnist_cls.get_config()).model
  # Per glimpse: LSTM gates 2*(144+256)*1024 = 819,200; attention head
  # 2*256*5 = 2,560; read 2*12*100*100 + 2*12*12*100 = 268,800. After the
  # 8 glimpses, the softmax layer 2*256*10 = 5,120.
  assert benchmark.hand_count_train_flops(classifier_config) == 3 * (
      8 * 1_090_560 + 5_120)


# ---- every shipped config ----------------------------------------------------


def test_the_shipped_files_are_the_configs_and_sweeps_we_know():
  """Guards the globbing below: an empty list would test nothing."""
  assert set(SHIPPED_CONFIGS) >= {
      'mnist_attn', 'mnist_noattn', 'mnist_two_digit', 'cluttered_mnist_cls',
      'svhn', 'cifar10', 'coloured_mnist', 'smoke'}
  assert SWEEP_FILES == ['sweep_t_read']
  assert set(SHIPPED_CONFIGS) | set(SWEEP_FILES) == set(SHIPPED_FILES)


@pytest.fixture(scope='module')
def colour_data_dir(tmp_path_factory):
  """Tiny SVHN and CIFAR-10 files in their published formats.

  20 training images remain beside the 5,000 that validate.
  """
  folder = tmp_path_factory.mktemp('colour_data')
  data_files.write_svhn_mat_files(folder / 'svhn', 5020, 40)
  data_files.write_cifar10_batches(folder / 'cifar10', (1004,) * 5, 40)
  return str(folder)


def _tiny(config, data_dir):
  """The config at test size; its task, data, attention and likelihood kept."""
  if config.task == 'classify':
    config.classifier.update(T=2, hidden_size=16, glimpse=4)
  else:
    config.model.update(T=2, enc_size=16, dec_size=16, z_size=4, read_n=2,
                        write_n=3)
  # 64 images in batches of 8: the schedule's warm-up must fit the run.
  config.train.update(batch_size=8, warmup_steps=min(config.train.warmup_steps,
                                                     10))
  config.data.update(dir=data_dir, max_examples=64)
  return config


@pytest.mark.parametrize('name', SHIPPED_CONFIGS)
def test_every_shipped_config_runs_through_the_benchmark(
    name, data_dir, colour_data_dir):
  config = SHIPPED_MODULES[name].get_config()
  colour = config.data.name in ('svhn', 'cifar10')
  _tiny(config, colour_data_dir if colour else data_dir)
  result = benchmark.run(config, f'configs/{name}.py', steps=2, warmup=1,
                         iw_samples=2, eval_examples=16, iw_examples=2,
                         sample_count=4, repeats=1, matmul_repeats=1)
  assert set(benchmark.REQUIRED_KEYS) <= set(result)
  assert (result['config'], result['T'], result['batch']) == (
      f'configs/{name}.py', 2, 8)
  for key in ('train_images_per_sec', 'eval_images_per_sec',
              'train_gflops_per_image', 'hand_gflops_per_image',
              'roofline_fraction'):
    assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])
  assert math.isfinite(result['final_train_loss'])
  generated = [result['sample_images_per_sec'], result['iw2_images_per_sec']]
  if config.task == 'classify':
    assert generated == [None, None]  # no likelihood, no samples
  else:
    assert all(value > 0 for value in generated), generated


@pytest.mark.parametrize('name', SWEEP_FILES)
def test_a_sweep_file_is_refused_in_one_line_naming_a_point(name):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  completed = subprocess.run(
      [sys.executable, 'scripts/benchmark.py', f'--config=configs/{name}.py'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert completed.returncode == 1
  first_point = sweep.config_argument(SHIPPED_MODULES[name].get_sweep()[0])
  assert completed.stderr == (
      f'error: configs/{name}.py is a sweep file for scripts/sweep.py, not a '
      f'config; benchmark one of its points on the config it sweeps, e.g. '
      f'--config=configs/mnist_attn.py:{first_point}\n')


@pytest.mark.parametrize('name', SWEEP_FILES)
def test_every_sweep_point_is_a_config_the_benchmark_takes(name):
  for point in SHIPPED_MODULES[name].get_sweep():
    settings.parse(mnist_attn.get_config(sweep.config_argument(point)))
