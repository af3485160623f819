"""Orbax checkpoints in process: round trips, refusals, fallbacks, the best."""
import dataclasses
import json
import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import smoke
from draw_jax import checkpoints
from draw_jax import settings
from draw_jax import sharding
from draw_jax import train_state
import runs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# A restore of a damaged checkpoint leaves Orbax coroutines unawaited; Python
# reports them whenever they are collected.
pytestmark = pytest.mark.filterwarnings(
    'ignore::pytest.PytestUnraisableExceptionWarning')


@pytest.fixture(scope='module')
def model_config():
  return settings.parse(smoke.get_config()).model


def _state(model_config, seed=0):
  train = settings.parse(smoke.get_config()).train
  optimizer = train_state.create_optimizer(
      train, train_state.learning_rate_schedule(train, 20))
  return train_state.create(model_config, optimizer, jax.random.key(seed),
                            sharding.make_mesh()), optimizer


def _save(workdir, model_config, steps_and_metrics, keep=3):
  manager = checkpoints.make_manager(str(workdir), keep)
  state, optimizer = _state(model_config)
  for step, metrics in steps_and_metrics:
    state = dict(state, step=jnp.asarray(step, jnp.int32))
    checkpoints.save(manager, step, state, model_config, metrics)
    manager.wait_until_finished()
  manager.close()
  return state, optimizer


def _restore(workdir, model_config, optimizer, **kwargs):
  manager = checkpoints.make_manager(str(workdir), read_only=True)
  return checkpoints.restore(
      manager, train_state.create(model_config, optimizer, jax.random.key(0),
                                  abstract=True),
      model_config, sharding.replicated(sharding.make_mesh()), **kwargs)


def test_a_saved_state_restores_exactly(tmp_path, model_config):
  state, optimizer = _save(tmp_path, model_config, [(5, None)])
  restored = _restore(tmp_path, model_config, optimizer)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert checkpoints.state_bytes(state) == sum(
      np.asarray(leaf).nbytes for leaf in jax.tree.leaves(state))


def test_params_alone_restore_from_a_full_checkpoint(tmp_path, model_config):
  state, _ = _save(tmp_path, model_config, [(5, None)])
  params, step = checkpoints.load_params(model_config, str(tmp_path),
                                         sharding.make_mesh())
  assert step == 5
  for a, b in zip(jax.tree.leaves(state['params']), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_another_model_is_refused_naming_the_fields(tmp_path, model_config):
  _, optimizer = _save(tmp_path, model_config, [(5, None)])
  other = dataclasses.replace(model_config, z_size=9, enc_size=16)
  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match='enc_size: checkpoint has 32, config has 16; '
                           'z_size: checkpoint has 8, config has 9'):
    _restore(tmp_path, other, optimizer)
  # Fields that change only how the model runs may differ.
  faster = dataclasses.replace(model_config, remat='none', scan_unroll=2)
  assert int(_restore(tmp_path, faster, optimizer)['step']) == 5


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
    tmp_path, model_config):
  _, optimizer = _save(tmp_path, model_config, [(5, None), (6, None)])
  state_dir = tmp_path / 'checkpoints' / '6' / 'state'
  for name in os.listdir(state_dir / 'd'):
    os.remove(state_dir / 'd' / name)
  assert int(_restore(tmp_path, model_config, optimizer)['step']) == 5
  with pytest.raises(Exception):
    _restore(tmp_path, model_config, optimizer, step=6)
  for name in os.listdir(tmp_path / 'checkpoints' / '5' / 'state' / 'd'):
    os.remove(tmp_path / 'checkpoints' / '5' / 'state' / 'd' / name)
  with pytest.raises(checkpoints.NoReadableCheckpointError,
                     match=r'tried steps \[6, 5\]'):
    _restore(tmp_path, model_config, optimizer)


def test_the_best_and_the_latest_are_kept(tmp_path, model_config):
  best = {checkpoints.RANKING_KEY: 90.0}
  _save(tmp_path, model_config, [
      (1, {checkpoints.RANKING_KEY: 100.0}), (2, best), (3, None),
      (4, {checkpoints.RANKING_KEY: 95.0}), (5, None)], keep=2)
  manager = checkpoints.make_manager(str(tmp_path), read_only=True)
  assert set(manager.all_steps()) == {2, 4, 5}
  assert manager.best_step() == 2
  assert checkpoints.newest_complete(manager) == 5


def test_no_checkpoints_is_none_and_a_missing_folder_is_named(tmp_path,
                                                             model_config):
  _, optimizer = _state(model_config)
  assert _restore(tmp_path, model_config, optimizer) is None
  with pytest.raises(FileNotFoundError, match='holds no checkpoints'):
    checkpoints.load_params(model_config, str(tmp_path / 'none'),
                            sharding.make_mesh())


# A smoke run written by the code before the package's redesign (b6c0465):
#   python -m draw_jax.main --config=configs/smoke.py:steps=300
#     --config.train.checkpoint_every=300 --config.train.eval_every=300
#     --config.eval.iw_samples=0 --config.data.max_examples=1000
#     --config.sample.outputs=grid --workdir=...
# with its checkpoint, config.json and eval_300.json kept.
OLD_RUN = REPO_ROOT / 'tests' / 'testdata' / 'older_code_smoke_run'


def _old_run_config(data_dir, steps=300):
  config = smoke.get_config(f'steps={steps}')
  config.data.update(dir=data_dir, max_examples=1000)
  config.train.update(checkpoint_every=300, eval_every=300)
  config.eval.iw_samples = 0
  config.sample.outputs = 'grid'
  return config


def test_a_checkpoint_of_the_code_before_the_redesign_restores(tmp_path,
                                                               data_dir):
  workdir = tmp_path / 'old_run'
  shutil.copytree(OLD_RUN, workdir)  # eval and resume write into the workdir
  recorded = json.loads((OLD_RUN / 'eval_300.json').read_text())
  for split in ('valid', 'test'):  # the same ELBO as the old code measured
    config = _old_run_config(data_dir)
    config.eval.split = split
    results = runs.evaluate(config, workdir)
    assert results[f'{split}_neg_elbo'] == pytest.approx(
        recorded[f'{split}_neg_elbo'], abs=0.01)
  # The optimizer state restores too: the run resumes where it stopped.
  state = runs.train(_old_run_config(data_dir, steps=302), workdir)
  assert int(state['step']) == 302
  assert all(np.isfinite(leaf).all()
             for leaf in jax.tree.leaves(sharding.to_host(state['params'])))
