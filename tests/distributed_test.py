"""Data parallelism on a device mesh and across processes gives the same model.

Tolerance: the sharded step sums the batch's gradients in another order, so
float32 gradients differ in their last bits. Adam's first updates are close to
lr * sign(g), so a gradient component that is ~0 can flip sign and move its
parameter by up to 2 * lr per step; a gradient that is not ~0 moves by the
same amount either way. Hence: every parameter within 2 * lr * steps, and
all but a handful (99.9%) within 1e-5.
"""
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from configs import smoke
from draw_jax import checkpoints
from draw_jax import pictures
from draw_jax import settings
from draw_jax import sharding
from draw_jax import train_state
import runs

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 6
TIMEOUT_S = 240


def _env(data_dir, devices=None):
  # The suite's compile flags (conftest.py) stay; the device count is ours.
  flags = [flag for flag in os.environ.get('XLA_FLAGS', '').split()
           if not flag.startswith('--xla_force_host_platform_device_count')]
  if devices:
    flags.append(f'--xla_force_host_platform_device_count={devices}')
  return dict(os.environ, DRAW_DATA_DIR=data_dir, JAX_PLATFORMS='cpu',
              XLA_FLAGS=' '.join(flags))


def _command(workdir, steps=STEPS, extra=()):
  return [sys.executable, '-m', 'draw_jax.main',
          f'--config=configs/smoke.py:steps={steps}',
          '--config.train.eval_every=1000', '--config.train.checkpoint_every=3',
          '--config.sample.outputs=grid', '--config.data.max_examples=1000',
          f'--workdir={workdir}', *extra]


def _train(workdir, data_dir, devices=None, steps=STEPS):
  result = subprocess.run(_command(workdir, steps), cwd=REPO,
                          env=_env(data_dir, devices), capture_output=True,
                          text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _params(workdir, data_dir):
  config = smoke.get_config()
  config.data.dir = data_dir
  run = checkpoints.load_trained(settings.parse(config).model, str(workdir))
  assert run.step == STEPS
  return [np.asarray(leaf) for leaf in jax.tree.leaves(run.params)]


def _assert_close(params_a, params_b):
  learning_rate = smoke.get_config().train.learning_rate
  differences = np.concatenate([np.abs(a - b).ravel()
                                for a, b in zip(params_a, params_b)])
  assert differences.max() <= 2 * learning_rate * STEPS
  assert np.mean(differences <= 1e-5) >= 0.999


@pytest.fixture(scope='module')
def one_device(tmp_path_factory, data_dir):
  """The same run in this process, which has one device."""
  assert jax.device_count() == 1
  workdir = tmp_path_factory.mktemp('one_device')
  config = smoke.get_config(f'steps={STEPS}')
  config.data.update(dir=data_dir, max_examples=1000)
  config.train.update(eval_every=1000, checkpoint_every=3)
  config.sample.outputs = 'grid'
  runs.train(config, str(workdir))
  return _params(workdir, data_dir)


@pytest.fixture(scope='module')
def eight_devices(tmp_path_factory, data_dir):
  """(workdir, stderr) of a straight run on 8 devices."""
  workdir = tmp_path_factory.mktemp('eight_devices')
  return workdir, _train(workdir, data_dir, devices=8).stderr


def test_eight_devices_match_one(one_device, eight_devices, data_dir):
  workdir, log = eight_devices
  assert 'on 8 cpu device(s)' in log
  _assert_close(one_device, _params(workdir, data_dir))


def test_eight_device_resume_matches_straight_run(eight_devices, tmp_path,
                                                  data_dir):
  # The straight run as a run stopped after its checkpoint at STEPS // 2.
  shutil.copytree(eight_devices[0], tmp_path, dirs_exist_ok=True)
  shutil.rmtree(tmp_path / 'checkpoints' / str(STEPS))
  result = _train(tmp_path, data_dir, devices=8)
  assert f'resuming at step {STEPS // 2}' in result.stderr
  for a, b in zip(_params(eight_devices[0], data_dir),
                  _params(tmp_path, data_dir)):
    np.testing.assert_array_equal(a, b)


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_of_four_devices_match_one(one_device, tmp_path,
                                                 tmp_path_factory, data_dir):
  port = _free_port()
  # Multi-process CPU executables read back from JAX's persistent cache
  # deadlock, so the program must not write any there (see main.py).
  cache_dir = tmp_path_factory.mktemp('jax_cache')
  env = dict(_env(data_dir, devices=4), JAX_COMPILATION_CACHE_DIR=str(cache_dir))
  processes = [
      subprocess.Popen(
          # No IW bound at the end: only the parameters are compared, and
          # these processes compile everything afresh.
          _command(tmp_path, extra=(f'--coordinator_address=localhost:{port}',
                                    '--num_processes=2', f'--process_id={i}',
                                    '--config.eval.iw_samples=0')),
          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
          text=True)
      for i in range(2)]
  try:
    outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in processes]
  except subprocess.TimeoutExpired:
    for process in processes:
      process.kill()
    tails = [p.communicate()[0][-3000:] for p in processes]
    pytest.fail(f'the two processes did not finish in {TIMEOUT_S} s:\n'
                + '\n----\n'.join(tails))
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  assert 'process 1 of 2, 4 of 8 devices local' in outputs[1]
  # Only process 0 writes metrics, samples and the config.
  assert (tmp_path / 'metrics.jsonl').exists()
  assert not list(cache_dir.iterdir())
  _assert_close(one_device, _params(tmp_path, data_dir))


def test_batch_that_does_not_divide_over_devices_is_named():
  config = smoke.get_config('batch=12')
  with pytest.raises(settings.ConfigError,
                     match='train.batch_size=12 does not divide evenly over 8'):
    settings.parse(config, device_count=8)


def sharded_samples():
  """(devices, per-device rows in the HLO, samples) of 800 smoke samples."""
  draw_config = settings.parse(smoke.get_config()).model
  mesh = sharding.make_mesh()
  init_key, _, _ = train_state.run_keys(0)
  params = train_state.create(draw_config, optax.identity(), init_key,
                              mesh)['params']
  sampler = pictures.Sampler(train_state.graphdef(draw_config), draw_config,
                             mesh, 'none')
  hlo = sampler._final.lower(params, jax.random.key(3), 800).compile().as_text()
  samples = sampler.final_samples(params, jax.random.key(3), 800)
  return jax.device_count(), len(re.findall(r'\[100,', hlo)), np.asarray(samples)


_ON_EIGHT_DEVICES = """
import sys
import numpy as np
from distributed_test import sharded_samples
devices, rows, samples = sharded_samples()
np.savez(sys.argv[1], devices=devices, rows=rows, samples=samples)
"""


def test_sampling_is_sharded_and_matches_one_device(tmp_path, data_dir):
  out = tmp_path / 'eight.npz'
  result = subprocess.run(
      [sys.executable, '-c', _ON_EIGHT_DEVICES, str(out)], cwd=REPO,
      env=dict(_env(data_dir, 8), PYTHONPATH=f'{REPO}:{REPO / "tests"}'),
      capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  eight = np.load(out)
  devices, rows, samples = sharded_samples()  # this process: one device
  # 800 samples over 8 devices: each device's program works on 100 of them.
  assert int(eight['devices']) == 8 and int(eight['rows']) > 0
  assert devices == 1 and rows == 0
  np.testing.assert_allclose(eight['samples'], samples, atol=1e-5)
