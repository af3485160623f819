"""Orbax checkpoints: the latest N plus the best by the validation objective.

Each checkpoint holds the train state and the model's shape (as JSON), so a
workdir that belongs to another model is refused before anything is written.
"""
import dataclasses
import math
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint.checkpoint_managers import preservation_policy

from draw_jax import defaults as config_defaults
from draw_jax import layers
from draw_jax import sharding
from draw_jax import train_state

# The key under which a checkpoint's metrics hold the validation figure
# that ranks checkpoints (the model config's SELECTION_METRIC); lower is
# better. Checkpoints written before it had this name stored their -ELBO as
# valid_neg_elbo.
RANKING_KEY = 'valid_objective'
_OLD_RANKING_KEY = 'valid_neg_elbo'
# Orbax retires an old checkpoint by renaming it into this subfolder, which is
# atomic, so a kill never leaves a half-deleted step; purge_deleted empties it.
DELETED_SUBDIR = 'deleted'


class CheckpointMismatchError(ValueError):
  """The workdir holds a checkpoint of a differently shaped model."""


class NoReadableCheckpointError(RuntimeError):
  """Every checkpoint in the workdir is damaged; we never restart silently."""


def checkpoint_dir(workdir):
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def _ranking_value(metrics):
  """The step's validation objective; +inf for a step saved between evaluations."""
  return metrics.get(RANKING_KEY, metrics.get(_OLD_RANKING_KEY, math.inf))


def make_manager(workdir, keep_latest=3, read_only=False):
  policy = preservation_policy.AnyPreservationPolicy([
      preservation_policy.LatestN(n=keep_latest),
      # Lower is better, so sort descending and keep the last one.
      preservation_policy.BestN(
          get_metric_fn=_ranking_value, reverse=True,
          n=1, keep_checkpoints_without_metrics=False),
  ])
  # best_fn makes Orbax write each step's metrics beside it, so the best
  # checkpoint is still known (and kept) after a restart.
  options = ocp.CheckpointManagerOptions(
      preservation_policy=policy, best_fn=_ranking_value, best_mode='min',
      create=not read_only, read_only=read_only,
      enable_async_checkpointing=True,
      todelete_subdir=None if read_only else DELETED_SUBDIR)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def purge_deleted(manager):
  """Removes the checkpoints Orbax has retired into DELETED_SUBDIR."""
  deleted = os.path.join(os.fspath(manager.directory), DELETED_SUBDIR)
  if jax.process_index() != 0 or not os.path.isdir(deleted):
    return
  for name in os.listdir(deleted):  # the folder stays: Orbax renames into it
    shutil.rmtree(os.path.join(deleted, name), ignore_errors=True)


def newest_complete(manager):
  """The newest step whose checkpoint was completely written, or None."""
  manager.reload()  # from the disk: a failed save is in no list
  return manager.latest_step()


def state_bytes(state):
  """What one checkpoint of state takes on disk, about."""
  return sum(leaf.nbytes for leaf in jax.tree.leaves(state))


def save(manager, step, state, model_config, metrics=None):
  """Starts an asynchronous save of state at step."""
  purge_deleted(manager)
  manager.save(
      int(step),
      args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          model_config=ocp.args.JsonSave(dataclasses.asdict(model_config))),
      metrics=metrics or {})


def _saved_model_config(manager, step):
  restored = manager.restore(
      step, args=ocp.args.Composite(model_config=ocp.args.JsonRestore()))
  return restored['model_config']


def check_compatible(manager, step, model_config):
  """Raises CheckpointMismatchError naming every field that differs."""
  saved = _saved_model_config(manager, step)
  wanted = dataclasses.asdict(model_config)
  # A field added since the checkpoint was written had its default then.
  defaults = config_defaults.get_config()[model_config.CONFIG_GROUP].to_dict()
  # Execution fields change no parameter, so a run may switch them on resume.
  differences = [
      f'{name}: checkpoint has {saved.get(name, defaults.get(name))!r}, '
      f'config has {value!r}'
      for name, value in wanted.items()
      if name not in layers.EXECUTION_FIELDS and
      saved.get(name, defaults.get(name)) != value]
  differences += [f'{name}: checkpoint has {saved[name]!r}, config has none'
                  for name in saved if name not in wanted]
  if differences:
    raise CheckpointMismatchError(
        f'{manager.directory} holds a checkpoint (step {step}) of a different '
        f'model: {"; ".join(differences)}. Use another --workdir, or a '
        'config of that model.')


def _with_sharding(abstract_state, sharding):
  return jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
      abstract_state)


def _set_aside(manager, steps):
  """Moves damaged checkpoints aside, kept, so their steps can be saved again."""
  directory = os.fspath(manager.directory)
  aside = os.path.join(os.path.dirname(directory), 'damaged_checkpoints')
  if jax.process_index() == 0:
    os.makedirs(aside, exist_ok=True)
    for step in steps:
      target, copies = os.path.join(aside, str(step)), 0
      while os.path.exists(target):
        copies += 1
        target = os.path.join(aside, f'{step}.{copies}')
      os.rename(os.path.join(directory, str(step)), target)
      logging.warning('moved the unreadable checkpoint of step %d to %s', step,
                      target)
  ocp.multihost.sync_global_processes('draw_jax_set_aside_damaged')
  manager.reload()


def _restore_args(target, partial):
  if not partial:
    return ocp.args.StandardRestore(target)
  # Only the parts of the saved state that target names, e.g. the params.
  return ocp.args.PyTreeRestore(
      item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
      partial_restore=True)


def _saved_keys(manager, step):
  """The top-level names of the state saved at step."""
  handler = ocp.StandardCheckpointHandler()
  try:
    return set(handler.metadata(manager.directory / str(step) / 'state').keys())
  finally:
    handler.close()


def _target_for(saved_keys, target, optional, partial):
  """(what of target to restore from a checkpoint, whether partially).

  Keys in optional that the checkpoint lacks are left out; ones it holds but
  target does not want are dropped by a partial restore.
  """
  kept = {name: value for name, value in target.items()
          if name in saved_keys or name not in optional}
  return kept, partial or bool((saved_keys - set(kept)) & set(optional))


def restore(manager, abstract_state, model_config, sharding, step=None,
            set_aside_damaged=False, partial=False, optional=()):
  """The state saved at step, else the newest readable one; None if none exist.

  A damaged checkpoint is skipped with a warning for the one before it, and,
  with set_aside_damaged (training), moved out of the way; if every one is
  damaged this raises, moving nothing, rather than starting from scratch.
  With partial, abstract_state may name a subset of the saved state (such as
  step and params, which is all a pretrained/ folder holds). Top-level keys
  in optional (the parameters' moving average) may be missing from a
  checkpoint, and are then missing from what is returned; saved but not in
  abstract_state, they are left on the disk.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint for step {step} in '
                              f'{manager.directory}; it has {sorted(steps)}')
    steps = [step]
  target = _with_sharding(abstract_state, sharding)
  for index, candidate in enumerate(steps):
    try:
      check_compatible(manager, candidate, model_config)
      wanted, partially = _target_for(_saved_keys(manager, candidate), target,
                                      optional, partial)
      restored = manager.restore(
          candidate,
          args=ocp.args.Composite(state=_restore_args(wanted, partially)))
    except CheckpointMismatchError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      # Orbax raises many types for a damaged directory; all mean "unreadable".
      logging.warning('checkpoint at step %d in %s is unreadable (%s: %s); '
                      'falling back to the previous one', candidate,
                      manager.directory, type(error).__name__,
                      str(error).splitlines()[0] if str(error) else '')
      continue
    if index:
      logging.warning('resumed from step %d, the newest readable checkpoint',
                      candidate)
      if set_aside_damaged:
        _set_aside(manager, steps[:index])
    return restored['state']
  if steps:
    raise NoReadableCheckpointError(
        f'no readable checkpoint in {manager.directory} (tried steps {steps}); '
        'refusing to start from scratch over them. Move them away to restart.')
  return None


# ---- a trained run, for --mode=eval, --mode=sample and train.init_from ----


@dataclasses.dataclass
class TrainedRun:
  """A run's parameters, for evaluation, pictures and the Python API."""
  model_config: Any  # an interface.ModelConfig
  graphdef: Any
  params: dict
  step: int
  mesh: Any


def load_params(model_config, directory, mesh, step=None, what='--workdir'):
  """(params, step) from a training workdir or a pretrained/ folder.

  The moving average's parameters where the run kept one.
  """
  if not os.path.isdir(checkpoint_dir(directory)):
    raise FileNotFoundError(
        f'{what}={directory} holds no checkpoints '
        f'(no folder {checkpoint_dir(directory)})')
  manager = make_manager(directory, read_only=True)
  target = train_state.abstract_params(model_config)
  target[train_state.EMA] = target['params']
  restored = restore(
      manager, target, model_config, sharding.replicated(mesh), step=step,
      partial=True, optional=(train_state.EMA,))
  if restored is None:
    raise FileNotFoundError(f'no checkpoint in {manager.directory}; train '
                            'first with --mode=train')
  return train_state.model_params(restored), int(restored['step'])


def load_trained(model_config, workdir, step=-1):
  """The parameters of workdir's checkpoint at step (-1: the latest)."""
  mesh = sharding.make_mesh()
  params, step = load_params(model_config, workdir, mesh,
                             None if step < 0 else step)
  return TrainedRun(model_config, train_state.graphdef(model_config), params,
                    step, mesh)


def saved_model_config(directory):
  """The model fields the newest checkpoint in directory was saved with."""
  if not os.path.isdir(checkpoint_dir(directory)):
    raise FileNotFoundError(f'{directory} holds no checkpoints (no folder '
                            f'{checkpoint_dir(directory)})')
  manager = make_manager(directory, read_only=True)
  try:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {manager.directory}')
    return _saved_model_config(manager, step)
  finally:
    manager.close()
