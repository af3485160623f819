"""Training that survives: kill -9, SIGTERM, damaged checkpoints, NaN, bad disks.

Most tests run the real program, `python -m draw_jax.main`, on the smoke
config in separate processes and compare its checkpoints bit for bit with an
uninterrupted run of the same command (issue 7). The processes share the
suite's JAX compilation cache, except the one that checks determinism, which
compiles afresh.
"""
import errno
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import smoke
from draw_jax import datasets
from draw_jax import checkpoints
from draw_jax import input_pipeline
from draw_jax import objectives
from draw_jax import settings
from draw_jax import sharding
from draw_jax import train
from draw_jax import train_state
from draw_jax import workdirs
import runs

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 40
# Evaluation and sampling only at the end, and small, so training dominates.
QUICK_FLAGS = ('--config.train.eval_every=100000', '--config.eval.iw_samples=0',
               '--config.sample.outputs=grid', '--config.sample.num_samples=4',
               '--config.data.max_examples=1000')
COMMAND = (f'--config=configs/smoke.py:steps={STEPS}',
           '--config.train.checkpoint_every=2', *QUICK_FLAGS)
PROCESS_TIMEOUT = 180  # seconds for one process; a loaded CPU is slow
STARTED = r'(starting|resuming) at step (\d+):'
PROGRESS = r'step \d+/\d+ \|'
TMP_SUFFIX = '.orbax-checkpoint-tmp'

# A restore of a damaged checkpoint leaves Orbax coroutines unawaited; Python
# reports them whenever they are collected, in whichever test runs then.
pytestmark = pytest.mark.filterwarnings(
    'ignore::pytest.PytestUnraisableExceptionWarning')


class _Trainer:
  """One `python -m draw_jax.main` process; a thread collects its output."""

  def __init__(self, workdir, flags, data_dir, compile_cache=None):
    env = dict(os.environ, DRAW_DATA_DIR=data_dir, JAX_PLATFORMS='cpu',
               PYTHONUNBUFFERED='1')
    if compile_cache:  # a warm start: seconds instead of tens of seconds
      env.update(JAX_COMPILATION_CACHE_DIR=str(compile_cache),
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
    # A child of a non-interactive shell inherits SIGINT ignored; the trainer
    # installs its own handler, so Ctrl-C reaches it all the same.
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'draw_jax.main', *flags, f'--workdir={workdir}'],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    self._lines = []
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.process.stdout:
      self._lines.append(line)

  @property
  def log(self):
    return ''.join(self._lines)

  def wait_for(self, pattern, timeout=PROCESS_TIMEOUT):
    """The first match of pattern in the output, or None if the process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      match = re.search(pattern, self.log, re.M)
      if match or self.process.poll() is not None:
        if not match:
          self._reader.join(10)
          match = re.search(pattern, self.log, re.M)
        return match
      time.sleep(0.01)
    raise TimeoutError(f'no {pattern!r} within {timeout}s:\n{self.log}')

  def wait_for_step(self, step, timeout=PROCESS_TIMEOUT):
    """Waits for a progress line at or past step; False if the process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      logged = [int(n) for n in re.findall(r'step (\d+)/\d+ \|', self.log)]
      if logged and max(logged) >= step:
        return True
      if self.process.poll() is not None:
        return False
      time.sleep(0.01)
    raise TimeoutError(f'no step {step} within {timeout}s:\n{self.log}')

  def wait(self, timeout=PROCESS_TIMEOUT):
    returncode = self.process.wait(timeout)
    self._reader.join(10)
    return returncode

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait(30)
    self._reader.join(10)


def _run(workdir, flags, data_dir, compile_cache=None):
  """Runs the program to its end; returns (exit code, output)."""
  with _Trainer(workdir, flags, data_dir, compile_cache) as trainer:
    return trainer.wait(), trainer.log


def _config(arg=f'steps={STEPS}'):
  return smoke.get_config(arg)


def _steps(workdir):
  """Complete checkpoint steps: Orbax renames a save's temporary dir when done."""
  directory = pathlib.Path(workdir) / 'checkpoints'
  if not directory.is_dir():
    return []
  return sorted(int(path.name) for path in directory.iterdir()
                if path.name.isdigit())


def _restore(workdir, step, config=None):
  """The train state saved at step; raises if that checkpoint is unreadable."""
  run = settings.parse(config or _config())
  optimizer = train_state.create_optimizer(
      run.train,
      train_state.learning_rate_schedule(run.train, run.train.num_steps))
  init_key, _, _ = train_state.run_keys(run.train.seed)
  manager = checkpoints.make_manager(str(workdir), read_only=True)
  try:
    return checkpoints.restore(
        manager, train_state.create(run.model, optimizer, init_key,
                                    abstract=True),
        run.model, sharding.replicated(sharding.make_mesh()), step=step)
  finally:
    manager.close()


def _assert_same_state(workdir, expected_workdir, step=STEPS, config=None):
  """Both workdirs end at step with bit-identical parameters and optimizer."""
  assert _steps(workdir)[-1] == _steps(expected_workdir)[-1] == step
  state = _restore(workdir, step, config)
  expected = _restore(expected_workdir, step, config)
  assert int(state['step']) == step
  leaves, expected_leaves = jax.tree.leaves(state), jax.tree.leaves(expected)
  assert len(leaves) == len(expected_leaves) > 3
  for leaf, expected_leaf in zip(leaves, expected_leaves):
    np.testing.assert_array_equal(np.asarray(leaf), np.asarray(expected_leaf))


def _snapshot(directory):
  """Every file's size and mtime, but the lock's, which each run rewrites."""
  return {str(path.relative_to(directory)): (path.stat().st_size,
                                             path.stat().st_mtime_ns)
          for path in pathlib.Path(directory).rglob('*')
          if path.name != workdirs.LOCK_FILE}


def _damage(step_dir, how):
  """Deletes or truncates part of a checkpoint, as a full disk or crash might."""
  data_files = sorted((step_dir / 'state' / 'ocdbt.process_0' / 'd').iterdir(),
                      key=lambda path: path.stat().st_size)
  if how == 'deleted data file':
    data_files[-1].unlink()
  elif how == 'truncated data file':
    with open(data_files[-1], 'r+b') as f:
      f.truncate(data_files[-1].stat().st_size // 2)
  elif how == 'deleted manifest':
    (step_dir / 'state' / 'manifest.ocdbt').unlink()
  elif how == 'deleted tree metadata':
    (step_dir / 'state' / '_METADATA').unlink()
  elif how == 'deleted model config':
    (step_dir / 'model_config' / 'metadata').unlink()
  else:
    raise ValueError(how)


def _metrics_lines(workdir):
  text = (pathlib.Path(workdir) / 'metrics.jsonl').read_text()
  return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope='module')
def compile_cache():
  """The suite's JAX compilation cache (conftest.py): other tests fill it too."""
  return pathlib.Path(os.environ['JAX_COMPILATION_CACHE_DIR'])


@pytest.fixture(scope='module')
def reference(tmp_path_factory, data_dir, compile_cache):
  """An uninterrupted run of COMMAND: the workdir every other run is held to."""
  workdir = tmp_path_factory.mktemp('reference')
  returncode, log = _run(workdir, COMMAND, data_dir, compile_cache)
  assert returncode == 0, log
  assert 'starting at step 0:' in log
  return workdir


# ---- processes killed, stopped and restarted -------------------------------


def test_same_command_in_two_processes_gives_identical_parameters(
    tmp_path, data_dir, reference):
  # Compiled afresh, not from the cache the reference run filled.
  returncode, log = _run(tmp_path / 'run', COMMAND, data_dir,
                         compile_cache=tmp_path / 'empty_cache')
  assert returncode == 0, log
  _assert_same_state(tmp_path / 'run', reference)


def _temporary_dirs(workdir):
  """Checkpoint directories Orbax is still writing (or was, when killed)."""
  directory = workdir / 'checkpoints'
  if not directory.is_dir():
    return set()
  return {name for name in os.listdir(directory) if TMP_SUFFIX in name}


def _wait_for_save_in_progress(trainer, workdir):
  """Returns once a new checkpoint save is under way, or the process ended."""
  leftovers = _temporary_dirs(workdir)
  while trainer.process.poll() is None:
    if _temporary_dirs(workdir) - leftovers:
      return
    time.sleep(0.002)


def test_kill_9_at_random_moments_then_restart_matches_uninterrupted_run(
    tmp_path, data_dir, reference, compile_cache):
  rng = random.Random(7)
  # Each killed attempt dies once past a step: at a random moment, or the
  # moment an asynchronous checkpoint save is under way.
  kills = [('random', 10), ('during save', 25)]
  workdir = tmp_path / 'killed'
  deadline = time.monotonic() + 8 * PROCESS_TIMEOUT
  expected_start, starts, killed, interrupted_saves = 0, [], 0, 0
  for attempt in range(len(kills) + 3):
    assert time.monotonic() < deadline, f'still not done after {attempt} attempts'
    leftovers = _temporary_dirs(workdir)
    with _Trainer(workdir, COMMAND, data_dir, compile_cache) as trainer:
      started = trainer.wait_for(STARTED)
      assert started, trainer.log
      starts.append(int(started.group(2)))
      # Each restart resumes from the newest complete checkpoint, not older.
      assert starts[-1] == expected_start, trainer.log
      assert 'unreadable' not in trainer.log
      if attempt < len(kills):
        how, past_step = kills[attempt]
        if trainer.wait_for_step(past_step):
          if how == 'during save':
            _wait_for_save_in_progress(trainer, workdir)
          else:
            time.sleep(rng.uniform(0.0, 0.4))
        trainer.process.kill()
      returncode = trainer.wait()
    (tmp_path / f'attempt_{attempt}.log').write_text(trainer.log)  # for failures
    if returncode == 0:
      break
    assert returncode == -signal.SIGKILL, trainer.log
    killed += 1
    interrupted_saves += bool(_temporary_dirs(workdir) - leftovers)
    # Every complete checkpoint directory restores, whatever the moment.
    for step in _steps(workdir):
      assert int(_restore(workdir, step)['step']) == step
    expected_start = max(_steps(workdir), default=0)
  assert returncode == 0, trainer.log
  assert killed == len(kills), starts
  assert interrupted_saves >= 1, 'no kill landed during a checkpoint save'
  assert any(start > 0 for start in starts[1:]), starts
  _assert_same_state(workdir, reference)
  # A kill never leaves half a line in the metrics file.
  assert all('step' in line for line in _metrics_lines(workdir))


# No periodic checkpoint within reach: only a signal can have saved.
LONG_FLAGS = ('--config=configs/smoke.py:steps=100000',
              '--config.train.checkpoint_every=100000', *QUICK_FLAGS)


def _stopped_by(signum, workdir, data_dir, compile_cache, seed):
  """Sends signum once training is under way; returns (status, log, step).

  Sent within 0.05 s of the first progress line (step 5), so the step is
  usually below STEPS and a resumed run can be held to the reference.
  """
  with _Trainer(workdir, LONG_FLAGS, data_dir, compile_cache) as trainer:
    assert trainer.wait_for(PROGRESS), trainer.log
    time.sleep(random.Random(seed).uniform(0.0, 0.05))
    trainer.process.send_signal(signum)
    returncode = trainer.wait(60)
  name = signal.Signals(signum).name
  stopped = re.search(rf'{name}: checkpointed step (\d+); exiting', trainer.log)
  assert stopped, trainer.log
  return returncode, trainer.log, int(stopped.group(1))


def test_sigterm_checkpoints_the_step_it_reached_and_exits(
    tmp_path, data_dir, compile_cache):
  returncode, log, step = _stopped_by(signal.SIGTERM, tmp_path, data_dir,
                                      compile_cache, seed=3)
  assert returncode == 0, log
  assert 5 <= step < 100000
  assert _steps(tmp_path) == [step]
  state = _restore(tmp_path, step, _config('steps=100000'))
  assert int(state['step']) == step
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state['params']))


# ---- damaged checkpoints ----------------------------------------------------


def _command_config(data_dir):
  """COMMAND as a ConfigDict, for runs in this process."""
  config = _config()
  config.data.dir = data_dir
  config.train.update(checkpoint_every=2, eval_every=100000)
  config.eval.iw_samples = 0
  config.sample.update(outputs='grid', num_samples=4)
  config.data.max_examples = 1000
  return config


def test_damaged_latest_checkpoint_falls_back_and_training_continues(
    tmp_path, data_dir, reference, caplog):
  workdir = tmp_path / 'damaged'
  shutil.copytree(reference, workdir)
  _damage(workdir / 'checkpoints' / str(STEPS), 'deleted data file')
  previous = _steps(workdir)[-2]
  caplog.set_level('INFO')
  runs.train(_command_config(data_dir), str(workdir))
  log = caplog.text
  assert re.search(rf'checkpoint at step {STEPS} in \S+ is unreadable', log), log
  assert f'resuming at step {previous}:' in log
  # It trained again from `previous` and saved a readable final checkpoint.
  _assert_same_state(workdir, reference)
  # The damaged checkpoint is kept, out of the way of the new one.
  assert (workdir / 'damaged_checkpoints' / str(STEPS) / 'state').is_dir()


@pytest.mark.parametrize('how', ['deleted data file', 'truncated data file',
                                 'deleted manifest', 'deleted tree metadata',
                                 'deleted model config'])
def test_each_kind_of_damage_is_detected_and_the_previous_step_restored(
    tmp_path, reference, how, caplog):
  shutil.copytree(reference / 'checkpoints', tmp_path / 'checkpoints')
  _damage(tmp_path / 'checkpoints' / str(STEPS), how)
  state = _restore(tmp_path, step=None)
  previous = _steps(tmp_path)[-2]
  assert int(state['step']) == previous
  expected = _restore(reference, previous)
  for leaf, expected_leaf in zip(jax.tree.leaves(state), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(leaf, expected_leaf)
  assert re.search(rf'checkpoint at step {STEPS} in \S+ is unreadable',
                   caplog.text), caplog.text


def test_every_checkpoint_damaged_is_a_clear_error_and_nothing_is_deleted(
    tmp_path, data_dir, reference):
  workdir = tmp_path / 'all_damaged'
  shutil.copytree(reference, workdir)
  steps = _steps(workdir)
  assert len(steps) >= 2
  for step in steps:
    _damage(workdir / 'checkpoints' / str(step), 'deleted data file')
  before = _snapshot(workdir)
  config = _config()
  config.data.dir = data_dir
  tried = re.escape(f'tried steps {sorted(steps, reverse=True)}')
  with pytest.raises(checkpoints.NoReadableCheckpointError, match=tried):
    runs.train(config, str(workdir))
  assert _snapshot(workdir) == before


# ---- non-finite loss and gradients -------------------------------------------


def _negative_elbo(config, params, images):
  graphdef = train_state.graphdef(settings.parse(config).model)
  output = nnx.merge(graphdef, params)(images, jax.random.key(1))
  return np.asarray(objectives.negative_elbo(output, images).total)


def test_overflowing_parameters_stop_the_run_and_keep_the_last_good_checkpoint(
    tmp_path, data_dir, reference, compile_cache):
  workdir = tmp_path / 'overflow'
  shutil.copytree(reference, workdir)
  # Resumes at STEPS, then a learning rate near float32's limit overflows the
  # parameters within a step or two; every step would be checkpointed.
  flags = (f'--config=configs/smoke.py:steps={STEPS + 10}',
           '--config.train.checkpoint_every=1',
           '--config.train.learning_rate=1e38',
           '--config.train.grad_clip_norm=1e30', *QUICK_FLAGS)
  returncode, log = _run(workdir, flags, data_dir, compile_cache)
  assert returncode != 0, log
  failed = re.search(r'non-finite loss or gradient at step (\d+)', log)
  assert failed, log
  bad_step = int(failed.group(1))
  assert STEPS < bad_step <= STEPS + 10
  assert 'error: non-finite loss or gradient' in log.strip().splitlines()[-1]
  # The checkpoints of the steps before the failure are kept, and the newest
  # one holds parameters that still give a finite loss.
  steps = _steps(workdir)
  assert steps[-1] == bad_step - 1 and len(steps) >= 2, steps
  config = _config(f'steps={STEPS + 10}')
  config.train.learning_rate = 1e38
  state = _restore(workdir, steps[-1], config)
  params = state['params']
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params))
  images = datasets.load_splits('binarized_mnist', data_dir).valid[:64]
  loss = _negative_elbo(config, params, jnp.asarray(images, jnp.float32))
  assert np.isfinite(loss).all(), loss


POISONED_STEP = 3  # as the log counts steps: the update that makes step 3


@pytest.fixture
def poisoned_loss(monkeypatch, data_dir):
  """Makes the loss NaN, with NaN gradients, on the batch of POISONED_STEP only.

  One training image (the first of that batch) is 'poisoned'; the data order
  is a pure function of (seed, step), so no other step sees it.
  """
  config = _config('steps=10')
  splits = datasets.load_splits(config.data.name, data_dir)
  _, data_key, _ = train_state.run_keys(config.train.seed)
  first_epoch = input_pipeline.make_epoch_order(
      data_key, splits.train.shape[0], sharding.make_mesh())(0)
  index = int(input_pipeline.batch_indices(POISONED_STEP - 1, first_epoch,
                                           config.train.batch_size)[0])
  poison = jnp.asarray(splits.train[index], jnp.float32)
  negative_elbo = objectives.negative_elbo

  def poisoned(output, images, *likelihood):
    terms = negative_elbo(output, images, *likelihood)
    hit = jnp.any(jnp.all(images == poison[None], axis=(1, 2, 3)))
    return terms.replace(
        reconstruction=terms.reconstruction * jnp.where(hit, jnp.nan, 1.0))

  monkeypatch.setattr(objectives, 'negative_elbo', poisoned)


def _poison_config(data_dir, skip):
  config = _config('steps=10')
  config.data.dir = data_dir
  config.train.update(checkpoint_every=5, log_every=5, eval_every=100000,
                      skip_nonfinite_updates=skip)
  config.eval.iw_samples = 0
  config.sample.update(outputs='grid', num_samples=4)
  return config


def test_nonfinite_gradient_stops_the_run_naming_its_step(
    tmp_path, data_dir, poisoned_loss):
  message = f'non-finite loss or gradient at step {POISONED_STEP} '
  with pytest.raises(train.NonFiniteLossError, match=message):
    runs.train(_poison_config(data_dir, skip=False), str(tmp_path))
  assert _steps(tmp_path) == []


def test_skip_nonfinite_updates_skips_and_counts_them(
    tmp_path, data_dir, poisoned_loss):
  state = runs.train(_poison_config(data_dir, skip=True),
                                   str(tmp_path))
  assert int(state['step']) == 10
  assert train.skipped_updates(state['opt_state']) == 1
  lines = [line for line in _metrics_lines(tmp_path) if 'skipped_updates' in line]
  assert [(line['step'], line['skipped_updates']) for line in lines] == [
      (5, 1.0), (10, 1.0)]
  assert all(np.isfinite(line['train_loss']) for line in lines)
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state['params']))
  assert _steps(tmp_path) == [5, 10]


# ---- disk trouble ------------------------------------------------------------


def test_unwritable_workdir_fails_at_start_up_before_training(
    tmp_path, data_dir, monkeypatch):
  # Tests run as root, which chmod does not stop; a path under a regular file
  # cannot be created by anyone.
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  compiled = []
  monkeypatch.setattr(train, 'make_train_step',
                      lambda *args, **kwargs: compiled.append(1))
  config = _config()
  config.data.dir = data_dir
  message = re.escape(f'workdir {blocker / "run"} is not writable')
  with pytest.raises(workdirs.WorkdirError, match=message):
    runs.train(config, str(blocker / 'run'))
  assert not compiled
  assert sorted(os.listdir(tmp_path)) == ['a_file']


# ---- Ctrl-C, a full disk, and two trainers on one workdir ------------------

def _run_alone_to(step, tmp_path, data_dir, compile_cache):
  """An uninterrupted run of LONG_FLAGS' model that ends at step."""
  workdir = tmp_path / f'alone_to_{step}'
  flags = (f'--config=configs/smoke.py:steps={step}', *LONG_FLAGS[1:])
  returncode, log = _run(workdir, flags, data_dir, compile_cache)
  assert returncode == 0, log
  return workdir


def _resume_matches_a_run_alone(workdir, step, tmp_path, data_dir, reference,
                                compile_cache):
  """Resumes a run stopped at step; it ends bit-identical to a run alone.

  The smoke learning rate is constant, so a run's length does not change its
  steps: one stopped before STEPS and resumed to STEPS ends as the reference.
  """
  if step < STEPS:
    flags, expected, end = COMMAND, reference, STEPS
  else:  # a very fast machine: a run alone of its own
    end = step + 10
    flags = (f'--config=configs/smoke.py:steps={end}', *LONG_FLAGS[1:])
    expected = _run_alone_to(end, tmp_path, data_dir, compile_cache)
  returncode, log = _run(workdir, flags, data_dir, compile_cache)
  assert returncode == 0, log
  assert f'resuming at step {step}:' in log
  _assert_same_state(workdir, expected, end, _config(f'steps={end}'))


def test_ctrl_c_checkpoints_the_step_it_reached_without_a_traceback(
    tmp_path, data_dir, reference, compile_cache):
  workdir = tmp_path / 'interrupted'
  returncode, log, step = _stopped_by(signal.SIGINT, workdir, data_dir,
                                      compile_cache, seed=5)
  assert returncode == 0, log
  assert 'Traceback' not in log and 'KeyboardInterrupt' not in log
  assert _steps(workdir) == [step]
  # The same command resumes there; it ends where a run alone ends.
  _resume_matches_a_run_alone(workdir, step, tmp_path, data_dir, reference,
                              compile_cache)


def test_second_ctrl_c_during_the_save_exits_at_once_and_hides_nothing(
    tmp_path, data_dir, reference, compile_cache):
  workdir = tmp_path / 'twice'
  landed = 0
  for _ in range(4):  # until one second Ctrl-C lands while the save is going
    with _Trainer(workdir, COMMAND, data_dir, compile_cache) as trainer:
      if not trainer.wait_for_step(4) or trainer.process.poll() is not None:
        break  # the run got to its end
      leftovers = _temporary_dirs(workdir)
      trainer.process.send_signal(signal.SIGINT)
      while trainer.process.poll() is None and not (
          _temporary_dirs(workdir) - leftovers):
        time.sleep(0.001)
      trainer.process.send_signal(signal.SIGINT)
      returncode = trainer.wait(60)
    assert 'Traceback' not in trainer.log, trainer.log
    if returncode == 128 + signal.SIGINT:
      landed += 1
      assert 'second SIGINT while checkpointing: exiting now' in trainer.log
    else:
      assert returncode == 0, trainer.log
    for step in _steps(workdir):  # whatever is complete restores
      assert int(_restore(workdir, step)['step']) == step
    if landed:
      break
  assert landed, 'no second Ctrl-C landed during a save'
  newest = max(_steps(workdir), default=0)
  returncode, log = _run(workdir, COMMAND, data_dir, compile_cache)
  assert returncode == 0, log
  assert 'unreadable' not in log
  assert re.search(STARTED, log).group(2) == str(newest)
  _assert_same_state(workdir, reference)


@pytest.fixture
def small_disk(tmp_path):
  """A folder on its own 8 MB tmpfs; mounting needs root."""
  path = tmp_path / 'small_disk'
  path.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs',
                            str(path)], capture_output=True, text=True,
                           check=False)
  if mounted.returncode:
    pytest.skip(f'cannot mount a tmpfs here: {mounted.stderr.strip()}')
  yield path
  subprocess.run(['umount', '-l', str(path)], check=False)


def _fill(directory):
  """Writes a file until the disk is full (it may be full already)."""
  try:
    with open(directory / 'filler', 'wb') as f:
      while True:
        f.write(b'\0' * 65536)
        f.flush()
  except OSError as error:
    assert error.errno == errno.ENOSPC, error


DISK_FULL = r'^error: the disk of workdir (\S+) (is full|has [\d.]+ MB free)'


def test_disk_filling_up_is_one_error_and_the_run_resumes_elsewhere(
    small_disk, tmp_path, data_dir, reference, compile_cache):
  workdir = small_disk / 'run'
  with _Trainer(workdir, COMMAND, data_dir, compile_cache) as trainer:
    assert trainer.wait_for_step(10), trainer.log
    _fill(small_disk)
    returncode = trainer.wait(60)
  assert returncode == 1, trainer.log
  assert 'Traceback' not in trainer.log, trainer.log
  last = trainer.log.strip().splitlines()[-1]
  assert re.match(DISK_FULL, last), trainer.log
  assert str(workdir) in last
  assert 'a checkpoint needs' in last or 'checkpoint(s) of' in last, last
  kept = int(re.search(r'the newest complete checkpoint, step (\d+), is kept',
                       last, re.I).group(1))
  assert kept == max(_steps(workdir)) >= 2
  for step in _steps(workdir):
    assert int(_restore(workdir, step)['step']) == step
  moved = tmp_path / 'moved'
  shutil.copytree(workdir, moved)
  returncode, log = _run(moved, COMMAND, data_dir, compile_cache)
  assert returncode == 0, log
  assert f'resuming at step {kept}:' in log
  _assert_same_state(moved, reference)


_ABORTED_SAVE = """
import sys
from absl import app
from draw_jax import main, workdirs

async def write_fragment():
  pass

def run_mode(*args):
  # An Orbax write cut short by the full disk: a coroutine never awaited.
  sys.modules[__name__].pending = write_fragment()
  raise workdirs.DiskFullError('the disk of workdir /w is full')

main.run_mode = run_mode
sys.argv = ['draw', '--config=configs/smoke.py', '--workdir=/w']
app.run(main.main)
"""


def test_a_full_disk_error_is_the_last_line_even_with_a_save_cut_short():
  done = subprocess.run([sys.executable, '-c', _ABORTED_SAVE],
                        capture_output=True, text=True, check=False,
                        timeout=120)
  assert done.returncode == 1, done.stderr
  assert done.stderr.strip().splitlines()[-1] == (
      'error: the disk of workdir /w is full'), done.stderr
  assert 'never awaited' not in done.stderr, done.stderr


_BACKGROUND_ERRORS = """
import threading
from draw_jax import workdirs

def fail_in_a_thread(error):
  def fail():
    raise error
  thread = threading.Thread(target=fail)
  thread.start()
  thread.join()

fail_in_a_thread(RuntimeError('Event loop is closed'))  # no save has failed
workdirs.quiet_failed_save()
fail_in_a_thread(RuntimeError('Event loop is closed'))  # the failed save's
fail_in_a_thread(OSError(28, 'No space left on device'))
fail_in_a_thread(ValueError('unrelated'))  # no part of it
"""


def test_only_what_a_failed_save_leaves_behind_is_quieted():
  done = subprocess.run([sys.executable, '-c', _BACKGROUND_ERRORS],
                        capture_output=True, text=True, check=False,
                        timeout=120)
  assert done.returncode == 0, done.stderr
  assert done.stderr.count('RuntimeError: Event loop is closed') == 1
  assert 'No space left' not in done.stderr
  assert 'ValueError: unrelated' in done.stderr


def test_a_disk_too_small_is_refused_before_training(small_disk, data_dir,
                                                     compile_cache):
  _fill(small_disk)
  os.truncate(small_disk / 'filler', 6 << 20)  # 2 MB left: less than needed
  returncode, log = _run(small_disk / 'run', COMMAND, data_dir, compile_cache)
  assert returncode == 1, log
  assert re.match(DISK_FULL, log.strip().splitlines()[-1]), log
  assert 'training needs' in log and 'Traceback' not in log
  assert not re.search(PROGRESS, log)
  assert not _steps(small_disk / 'run')


def test_a_second_trainer_on_the_workdir_is_refused(tmp_path, data_dir,
                                                    reference, compile_cache):
  workdir = tmp_path / 'shared'
  with _Trainer(workdir, COMMAND, data_dir, compile_cache) as first:
    assert first.wait_for(STARTED), first.log  # the lock is taken by then
    # Paused, it still holds the lock and cannot end before the second tries.
    first.process.send_signal(signal.SIGSTOP)
    returncode, log = _run(workdir, COMMAND, data_dir, compile_cache)
    assert returncode == 1, log
    assert 'Traceback' not in log
    assert re.search(r'^error: workdir \S+ is in use by process '
                     rf'{first.process.pid} on \S+; wait for that run', log,
                     re.M), log
    assert first.process.poll() is None  # the first goes on, undisturbed
    first.process.send_signal(signal.SIGCONT)
    assert first.wait() == 0, first.log
  # It ends where a run alone ends.
  _assert_same_state(workdir, reference)


def test_a_filesystem_without_flock_warns_and_goes_on(tmp_path, monkeypatch):
  def no_flock(*args):
    raise OSError(errno.ENOLCK, 'No locks available')
  monkeypatch.setattr(workdirs.fcntl, 'flock', no_flock)
  with workdirs.Lock(str(tmp_path)):
    assert (tmp_path / workdirs.LOCK_FILE).read_text().startswith(
        f'process {os.getpid()} on ')
