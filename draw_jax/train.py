"""Training: the jitted step, the loop, evaluation, checkpoints and resume.

Every random choice is derived from (seed, step), so a run stopped at any
checkpoint and resumed gives the same parameters as one that never stopped.
"""
import contextlib
import dataclasses
import json
import os
import signal
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from draw_jax import checkpoints
from draw_jax import evaluate
from draw_jax import host_memory
from draw_jax import input_pipeline
from draw_jax import metrics
from draw_jax import sampling
from draw_jax import settings as settings_lib
from draw_jax import sharding
from draw_jax import train_state
from draw_jax import workdirs


class NonFiniteLossError(RuntimeError):
  """The loss or a gradient became NaN or Inf; the message names the step."""


def make_train_step(graphdef, optimizer, learning_rate, mesh, settings):
  """The jitted step: gathers its batch on the device, donates the state.

  learning_rate is the optimizer's schedule; the step reports the rate its
  update used.

  The training key is an argument, not a constant: runs that differ only in
  their seed share one compiled step (and the persistent compilation cache).
  """
  batch_size = settings.train.batch_size
  binarization = settings.data.binarization
  ema_decay = settings.train.ema_decay

  def loss_fn(params, images, labels, key):
    model = nnx.merge(graphdef, params)
    terms = {name: jnp.mean(value) for name, value in
             model.per_example_terms(images, labels, key).items()}
    return terms.pop(model.LOSS), terms

  def train_step(state, data, epoch_order, train_key):
    step = state['step']
    indices = input_pipeline.batch_indices(step, epoch_order, batch_size)
    batch = jax.tree.map(
        lambda split: jax.lax.with_sharding_constraint(
            split[indices], sharding.batch_sharded(mesh)), data)
    step_key = jax.random.fold_in(train_key, step)
    images = input_pipeline.binarize(batch['images'], binarization,
                                     jax.random.fold_in(step_key, 1))
    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], images, batch.get('labels'), step_key)
    updates, opt_state = optimizer.update(grads, state['opt_state'],
                                          state['params'])
    params = optax.apply_updates(state['params'], updates)
    # param_norm overflows as soon as a parameter does, so the step that makes
    # them non-finite is caught before its checkpoint is written.
    step_metrics = dict(
        loss=loss, **terms, grad_norm=optax.tree.norm(grads),
        param_norm=optax.tree.norm(params), learning_rate=learning_rate(
            train_state.schedule_count(state['opt_state'])))
    new_state = dict(step=step + 1, params=params, opt_state=opt_state)
    if ema_decay:
      new_state[train_state.EMA] = train_state.update_ema(
          state[train_state.EMA], params, ema_decay, step)
    return new_state, step_metrics

  replicated = sharding.replicated(mesh)
  return jax.jit(train_step, in_shardings=(replicated,) * 4,
                 out_shardings=(replicated, replicated), donate_argnums=0)


@dataclasses.dataclass
class Training:
  """What a training run executes; scripts/benchmark.py times exactly this."""
  model_config: object  # a model.DrawConfig or a classifier.ClassifierConfig
  mesh: object
  graphdef: object
  state: dict
  train_data: dict  # the whole train split (images, labels), on the devices
  train_step: Callable  # (state, train_data, epoch_order, train_key) -> (state, metrics)
  train_key: jax.Array
  epoch_order: Callable  # epoch -> shuffled indices
  steps_per_epoch: int
  num_steps: int  # where the run ends: train.num_epochs or train.num_steps


def total_steps(train, num_examples):
  """train.num_epochs whole epochs when set, else train.num_steps."""
  num_steps = train.num_steps
  if train.num_epochs > 0:
    num_steps = train.num_epochs * input_pipeline.steps_per_epoch(
        num_examples, train.batch_size)
  if train.warmup_steps >= num_steps:
    raise settings_lib.ConfigError(
        f'train.warmup_steps={train.warmup_steps} is not below the run\'s '
        f'{num_steps} steps')
  return num_steps


def build_training(settings, splits, manager=None):
  """Model, state (restored from manager's newest checkpoint if any) and step."""
  model_config, train = settings.model, settings.train
  mesh = sharding.make_mesh()
  num_examples = splits.train.shape[0]
  num_steps = total_steps(train, num_examples)
  learning_rate = train_state.learning_rate_schedule(train, num_steps)
  optimizer = train_state.create_optimizer(train, learning_rate)
  init_key, data_key, train_key = train_state.run_keys(train.seed)
  ema = train.ema_decay > 0
  state = None
  if manager is not None:
    state = _restored_state(manager, model_config, optimizer, init_key, mesh,
                            ema)
  if state is None and train.init_from:
    state = _state_from_init(train, model_config, optimizer, mesh)
  if state is None:
    state = train_state.create(model_config, optimizer, init_key, mesh,
                               ema=ema)
  graphdef = train_state.graphdef(model_config)
  return Training(
      model_config=model_config, mesh=mesh, graphdef=graphdef, state=state,
      train_data=input_pipeline.on_devices(splits.train, splits.train_labels,
                                           mesh),
      train_step=make_train_step(graphdef, optimizer, learning_rate, mesh,
                                 settings),
      train_key=train_key,
      epoch_order=input_pipeline.make_epoch_order(data_key, num_examples, mesh),
      steps_per_epoch=input_pipeline.steps_per_epoch(num_examples,
                                                     train.batch_size),
      num_steps=num_steps)


def _restored_state(manager, model_config, optimizer, init_key, mesh, ema):
  """The workdir's newest checkpoint, or None; refuses another model's.

  A checkpoint from before train.ema_decay was set gets a moving average
  that starts at its parameters; one with an average, resumed without,
  leaves it behind.
  """
  state = checkpoints.restore_latest(
      manager, train_state.create(model_config, optimizer, init_key,
                                  abstract=True, ema=ema),
      model_config, sharding.replicated(mesh), set_aside_damaged=True,
      optional=(train_state.EMA,))
  if state is not None and ema and train_state.EMA not in state:
    logging.info('step %d was saved without a moving average of the '
                 'parameters; it starts at them', int(state['step']))
    state = train_state.with_ema_from_params(state, mesh)
  return state


def _state_from_init(train, model_config, optimizer, mesh):
  """A fresh optimizer over train.init_from's parameters (and maybe its step)."""
  params, source_step = checkpoints.load_params(
      model_config, train.init_from, mesh, what='train.init_from')
  step = source_step if train.init_continue else 0
  logging.info('starting at step %d from the parameters of %s (step %d) and a '
               'fresh optimizer', step, train.init_from, source_step)
  return train_state.from_params(params, step, optimizer, mesh,
                                 ema=train.ema_decay > 0)


def skipped_updates(opt_state):
  """How many non-finite updates optax.apply_if_finite has skipped, or 0."""
  count = getattr(opt_state, 'total_notfinite', None)
  return 0 if count is None else int(sharding.to_host(count))


class _StopSignal:
  """Turns SIGTERM (preemption) and SIGINT (Ctrl-C) into checkpoint-and-exit.

  A second signal while that checkpoint is written exits at once: Orbax
  writes into a temporary folder and renames it only when complete, so the
  half-written step is never taken for a checkpoint.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None  # the name of the first signal
    self._previous = {}
    try:
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    except ValueError:  # not the main thread: leave signals alone
      pass

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.received:
      os.write(2, f'error: second {name} while checkpointing: exiting now; the '
                  'checkpoints already complete are kept\n'.encode())
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.received = name

  def restore(self):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


# Logged to metrics.jsonl and TensorBoard, left out of the progress line.
_NOT_SHOWN = ('train_loss', 'train_grad_norm', 'train_param_norm')


class _Progress:
  """Averages step metrics and logs one progress line per log_every steps."""

  def __init__(self, writer, total_steps, batch_size, first_step):
    self._writer = writer
    self._total = total_steps
    self._batch = batch_size
    self._sums = {}
    self._count = 0
    self._since = time.time()
    self._steps_at_since = first_step

  def add(self, step_metrics):
    for name, value in step_metrics.items():
      self._sums[name] = self._sums.get(name, 0.0) + float(value)
    self._count += 1

  def leave_out(self, seconds):
    """Leaves evaluation and sampling time out of the next steps/s figure."""
    self._since += seconds

  def report(self, step, extra=None):
    if not self._count:
      return
    elapsed = time.time() - self._since
    steps_per_sec = (step - self._steps_at_since) / max(elapsed, 1e-9)
    means = {f'train_{name}': value / self._count
             for name, value in self._sums.items()}
    means.update(steps_per_sec=steps_per_sec,
                 images_per_sec=steps_per_sec * self._batch, **(extra or {}))
    self._writer.scalars(step, means)
    remaining = (self._total - step) / max(steps_per_sec, 1e-9)
    parts = ', '.join(f'{name[len("train_"):]} {value:.4g}'
                      for name, value in means.items()
                      if name.startswith('train_') and name not in _NOT_SHOWN)
    logging.info('step %d/%d | %.2f steps/s | %.0f img/s | loss %.2f (%s) | '
                 '%s left', step, self._total, steps_per_sec,
                 means['images_per_sec'], means['train_loss'], parts,
                 _duration(remaining))
    self._sums, self._count = {}, 0
    self._since, self._steps_at_since = time.time(), step


def _duration(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s'


def _check_finite(step, step_metrics, manager, skip_nonfinite=False):
  """False for a step whose update optax.apply_if_finite skipped; else raises."""
  if all(np.isfinite(float(v)) for v in step_metrics.values()):
    return True
  # apply_if_finite skips exactly the updates whose gradient is non-finite.
  if (skip_nonfinite and not np.isfinite(float(step_metrics['grad_norm'])) and
      np.isfinite(float(step_metrics['param_norm']))):
    logging.warning('step %d: non-finite loss or gradient (%s); update skipped',
                    step, _format(step_metrics))
    return False
  raise NonFiniteLossError(
      f'non-finite loss or gradient at step {step} ({_format(step_metrics)}); '
      f'the last good checkpoint (step {manager.latest_step()}) is kept. '
      'Lower train.learning_rate or set train.skip_nonfinite_updates=True.')


def _format(step_metrics):
  return ', '.join(f'{k}={float(v):.4g}' for k, v in step_metrics.items())


def _write_config(workdir, settings):
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump(settings.to_dict(), f, indent=2)


def train_and_evaluate(settings, workdir):
  """Trains, evaluates and checkpoints in workdir, resuming what is there."""
  data = settings.data
  splits = input_pipeline.load_splits(data.name, data.dir, data.max_examples)
  total_steps(settings.train, splits.train.shape[0])  # a bad schedule: now
  workdirs.prepare(workdir)
  is_chief = jax.process_index() == 0
  # One trainer per workdir; multi-process runs lock on their first process.
  with workdirs.Lock(workdir) if is_chief else contextlib.nullcontext():
    return _train_locked(settings, workdir, splits, is_chief)


def _train_locked(settings, workdir, splits, is_chief):
  manager = checkpoints.make_manager(workdir, settings.train.keep_checkpoints)
  training = build_training(settings, splits, manager)
  checkpoint_bytes = checkpoints.state_bytes(training.state)
  workdirs.check_space(workdir, checkpoint_bytes)
  if is_chief:
    _write_config(workdir, settings)
  writer = metrics.MetricWriter(workdir, enabled=is_chief)
  step = int(training.state['step'])
  logging.info('%s at step %d: %d parameters, %s on %d %s device(s)',
               'resuming' if step else 'starting', step,
               train_state.parameter_count(training.state['params']),
               settings.data.name, jax.device_count(), jax.default_backend())
  if jax.default_backend() == 'cpu':
    hint = host_memory.huge_page_hint(host_memory.thp_mode())
    if hint:
      logging.info(hint)
  evaluator = evaluate.Evaluator(training.graphdef, training.model_config,
                                 training.mesh, settings.data.binarization,
                                 settings.eval, settings.train.seed)
  pictures = sampling.make_pictures(settings, training.graphdef, training.mesh)
  loop = _Loop(settings, workdir, training, manager, writer, evaluator,
               pictures, splits, checkpoint_bytes)
  with workdirs.full_disk_reported(
      workdir, checkpoint_bytes, lambda: checkpoints.newest_complete(manager)):
    try:
      state = loop.run(training)
    finally:
      try:
        manager.wait_until_finished()
      finally:
        checkpoints.purge_deleted(manager)
        writer.close()
  return state


class _Loop:
  """The host side of training: dispatch, logging, evaluation, checkpoints."""

  def __init__(self, settings, workdir, training, manager, writer, evaluator,
               pictures, splits, checkpoint_bytes):
    self.train = settings.train
    self.iw_samples = settings.eval.iw_samples
    self.workdir = workdir
    self.model_config = training.model_config
    self.manager = manager
    self.writer = writer
    self.evaluator = evaluator
    self.pictures = pictures
    self.best_metric = 'valid_' + training.model_config.model_class.BEST_METRIC
    self.splits = splits
    self.num_steps = training.num_steps
    self.steps_per_epoch = training.steps_per_epoch
    self.checkpoint_bytes = checkpoint_bytes
    self._evaluated = {}  # step -> validation metrics, to not repeat them
    self._tested = {}  # step -> test metrics, with train.eval_test
    self._saved = set(manager.all_steps())
    self._last_save = time.time()

  def run(self, training):
    train = self.train
    state = training.state
    step = int(state['step'])
    epoch, epoch_order = None, None
    progress = _Progress(self.writer, self.num_steps, train.batch_size, step)
    stop = _StopSignal()
    started = time.time()
    budget = train.time_budget_minutes * 60.0
    pending = None  # (step, metrics) read one step late, keeping dispatch async
    try:
      while step < self.num_steps:
        if step // training.steps_per_epoch != epoch:
          epoch = step // training.steps_per_epoch
          epoch_order = training.epoch_order(epoch)
        state, step_metrics = training.train_step(
            state, training.train_data, epoch_order, training.train_key)
        step += 1
        if pending is not None:
          self._absorb(pending, progress)
        pending = (step, step_metrics)
        out_of_time = budget > 0 and time.time() - started > budget
        if stop.received or out_of_time or self._due(step) or self._save_due():
          self._absorb(pending, progress)
          pending = None
          self._step_boundary(state, step, progress)
        if stop.received:
          self._save(state, step)  # whether or not a checkpoint was due
          logging.warning('%s: checkpointed step %d; exiting', stop.received,
                          step)
          self.manager.wait_until_finished()
          return state
        if out_of_time:
          logging.info('time budget of %.1f min spent at step %d',
                       train.time_budget_minutes, step)
          break
      if pending is not None:
        self._absorb(pending, progress)
      self._finish(state, step, progress)
      return state
    finally:
      stop.restore()

  def _due(self, step):
    train = self.train
    return (step % train.log_every == 0 or step % train.checkpoint_every == 0 or
            step % train.eval_every == 0 or step == self.num_steps)

  def _save_due(self):
    """True once train.checkpoint_every_minutes have passed since a save."""
    minutes = self.train.checkpoint_every_minutes
    return minutes > 0 and time.time() - self._last_save >= minutes * 60

  def _absorb(self, pending, progress):
    step, step_metrics = pending
    step_metrics = sharding.to_host(step_metrics)
    if _check_finite(step, step_metrics, self.manager,
                     self.train.skip_nonfinite_updates):
      progress.add(step_metrics)  # skipped steps stay out of the averages

  def _step_boundary(self, state, step, progress):
    train = self.train
    if step % train.log_every == 0:
      progress.report(step, dict(skipped_updates=skipped_updates(state['opt_state'])))
    started = time.time()
    if step % train.eval_every == 0:
      self._validate(state, step)
    if step % train.checkpoint_every == 0 or self._save_due():
      self._save(state, step, self._evaluated.get(step))
    progress.leave_out(time.time() - started)

  def _validate(self, state, step):
    """Validation ELBO and samples, once per step whatever asks for them."""
    if step not in self._evaluated:
      self._evaluated[step] = self._evaluate(state, step, 'valid', iw_samples=0)
      if self.train.eval_test:  # reported, never used to choose
        self._tested[step] = self._evaluate(state, step, 'test', iw_samples=0)
      self._write_samples(state, step)
      self._save(state, step, self._evaluated[step])
    return self._evaluated[step]

  def _save(self, state, step, eval_metrics=None):
    self._last_save = time.time()
    if step in self._saved:
      return
    # A save that cannot fit is refused before Orbax starts writing it.
    workdirs.check_space(self.workdir, self.checkpoint_bytes, checkpoints=1,
                         newest=checkpoints.newest_complete(self.manager))
    self._saved.add(step)
    saved_metrics = None
    if eval_metrics is not None:
      saved_metrics = {checkpoints.BEST_METRIC: eval_metrics[self.best_metric]}
    checkpoints.save(self.manager, step, state, self.model_config, saved_metrics)

  def _evaluate(self, state, step, split, iw_samples):
    """The split's metrics for the run's model (the moving average, if kept).

    With a moving average, validation also reports the training parameters'
    figures, prefixed live_, so what the average buys is on the curve.
    """
    results = evaluate.evaluate_split(
        self.evaluator, train_state.model_params(state), self.splits,
        iw_samples, split)
    logged = dict(results)
    if split == 'valid' and train_state.EMA in state:
      live = evaluate.evaluate_split(self.evaluator, state['params'],
                                     self.splits, 0, split)
      logged.update({f'live_{name}': value for name, value in live.items()})
    self.writer.scalars(step, dict(logged, epoch=step / self.steps_per_epoch))
    logging.info('step %d %s', step, _format(logged))
    return results

  def _write_samples(self, state, step):
    # Every process runs the pictures' computation; only the first writes.
    directory = os.path.join(self.workdir, 'samples', f'step_{step}')
    self.pictures(train_state.model_params(state), directory, self.splits.test,
                  self.writer, step)

  def _finish(self, state, step, progress):
    """Final checkpoint, validation and test evaluation, samples."""
    progress.report(step)
    valid = self._validate(state, step)
    test = self._tested.get(step)
    if test is None or self.iw_samples:
      test = self._evaluate(state, step, 'test', self.iw_samples)
    if jax.process_index() == 0:
      with open(os.path.join(self.workdir, f'eval_{step}.json'), 'w') as f:
        json.dump(dict(step=step, num_steps=self.num_steps, **valid, **test), f,
                  indent=2)
