"""Orbax checkpoints: the latest N plus the best by validation ELBO.

Each checkpoint holds the train state and the model's shape (as JSON), so a
workdir that belongs to another model is refused before anything is written.
"""
import dataclasses
import os

import jax
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint.checkpoint_managers import preservation_policy

BEST_METRIC = 'valid_neg_elbo'


class CheckpointMismatchError(ValueError):
  """The workdir holds a checkpoint of a differently shaped model."""


class NoReadableCheckpointError(RuntimeError):
  """Every checkpoint in the workdir is damaged; we never restart silently."""


def checkpoint_dir(workdir):
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


def make_manager(workdir, keep_latest=3, read_only=False):
  policy = preservation_policy.AnyPreservationPolicy([
      preservation_policy.LatestN(n=keep_latest),
      # Lower is better, so sort descending and keep the last one.
      preservation_policy.BestN(
          get_metric_fn=lambda metrics: metrics[BEST_METRIC], reverse=True,
          n=1, keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      preservation_policy=policy, create=not read_only, read_only=read_only,
      enable_async_checkpointing=True)
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager, step, state, draw_config, metrics=None):
  """Starts an asynchronous save of state at step."""
  manager.save(
      int(step),
      args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          model_config=ocp.args.JsonSave(dataclasses.asdict(draw_config))),
      metrics=metrics)


def _saved_model_config(manager, step):
  restored = manager.restore(
      step, args=ocp.args.Composite(model_config=ocp.args.JsonRestore()))
  return restored['model_config']


def check_compatible(manager, step, draw_config):
  """Raises CheckpointMismatchError naming every field that differs."""
  saved = _saved_model_config(manager, step)
  wanted = dataclasses.asdict(draw_config)
  # compute_dtype changes no shape, so a run may switch it on resume.
  differences = [
      f'{name}: checkpoint has {saved.get(name)!r}, config has {value!r}'
      for name, value in wanted.items()
      if name != 'compute_dtype' and saved.get(name) != value]
  if differences:
    raise CheckpointMismatchError(
        f'{manager.directory} holds a checkpoint (step {step}) of a different '
        f'model: {"; ".join(differences)}. Use another --workdir.')


def _with_sharding(abstract_state, sharding):
  return jax.tree.map(
      lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
      abstract_state)


def restore_latest(manager, abstract_state, draw_config, sharding, step=None):
  """The newest readable checkpoint's state (or step's), or None if none exist.

  A damaged checkpoint is skipped with a warning for the one before it; if
  every one is damaged this raises rather than starting from scratch.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint for step {step} in '
                              f'{manager.directory}; it has {sorted(steps)}')
    steps = [step]
  target = _with_sharding(abstract_state, sharding)
  for candidate in steps:
    try:
      check_compatible(manager, candidate, draw_config)
      restored = manager.restore(
          candidate,
          args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
      if candidate != steps[0]:
        logging.warning('resumed from step %d, the newest readable checkpoint',
                        candidate)
      return restored['state']
    except CheckpointMismatchError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      # Orbax raises many types for a damaged directory; all mean "unreadable".
      logging.warning('checkpoint at step %d in %s is unreadable (%s: %s); '
                      'falling back to the previous one', candidate,
                      manager.directory, type(error).__name__,
                      str(error).splitlines()[0] if str(error) else '')
  if steps:
    raise NoReadableCheckpointError(
        f'no readable checkpoint in {manager.directory} (tried steps {steps}); '
        'refusing to start from scratch over them. Move them away to restart.')
  return None
