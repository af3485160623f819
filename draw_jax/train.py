"""Training: the jitted step, the state it starts from, and the loop.

Every random choice is derived from (seed, step), so a run stopped at any
checkpoint and resumed gives the same parameters as one that never stopped.
"""
import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import nnx

from draw_jax import checkpoints
from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import host_memory
from draw_jax import input_pipeline
from draw_jax import metrics
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
  make_batch = datasets.make_batch(settings.data)
  ema_decay = settings.train.ema_decay
  loss_name = settings.model.LOSS
  kl_warmup_steps = settings.train.kl_warmup_steps

  def loss_fn(params, images, labels, key, step):
    model = nnx.merge(graphdef, params)
    terms = {name: jnp.mean(value) for name, value in
             model.per_example_terms(images, labels, key).items()}
    loss = terms.pop(loss_name)
    if kl_warmup_steps:  # the -ELBO's KL weighed by beta, rising 0 -> 1
      terms['kl_weight'] = jnp.minimum(step / kl_warmup_steps, 1.0)
      terms[loss_name] = loss  # still logged: the -ELBO itself
      loss = terms['reconstruction'] + terms['kl_weight'] * terms['kl']
    return loss, terms

  def train_step(state, data, epoch_order, train_key):
    step = state['step']
    indices = input_pipeline.batch_indices(step, epoch_order, batch_size)
    step_key = jax.random.fold_in(train_key, step)
    images, labels = jax.tree.map(
        lambda array: jax.lax.with_sharding_constraint(
            array, sharding.batch_sharded(mesh)),
        make_batch(data, indices, jax.random.fold_in(step_key, 2)))
    images = input_pipeline.binarize(images, binarization, step_key)
    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'], images, labels, step_key, step)
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
  model_config: object  # an interface.ModelConfig
  mesh: object
  graphdef: object
  state: dict
  train_data: dict  # the whole train split (images, labels), on the devices
  train_step: Callable  # (state, train_data, epoch_order, train_key) -> (state, metrics)
  train_key: jax.Array
  epoch_order: Callable  # epoch -> shuffled indices
  steps_per_epoch: int
  num_steps: int  # where the run ends: train.num_epochs or train.num_steps
  # (epoch, its order): made once an epoch, not every step.
  _epoch_order: tuple = dataclasses.field(default=(None, None), init=False,
                                          repr=False)

  def step(self, state, step):
    """One update from state, which is at step: (new state, its metrics)."""
    epoch = step // self.steps_per_epoch
    if self._epoch_order[0] != epoch:
      self._epoch_order = (epoch, self.epoch_order(epoch))
    return self.train_step(state, self.train_data, self._epoch_order[1],
                           self.train_key)


def build_training(settings, splits, manager=None):
  """Model, state (restored from manager's newest checkpoint if any) and step."""
  model_config, train = settings.model, settings.train
  mesh = sharding.make_mesh()
  num_examples = splits.train.shape[0]
  num_steps = input_pipeline.num_steps(train, num_examples)
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
  state = checkpoints.restore(
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


def train_and_evaluate(settings, workdir):
  """Trains, evaluates and checkpoints in workdir, resuming what is there."""
  splits = datasets.load_for_training(settings.data)
  is_chief = jax.process_index() == 0
  with workdirs.training_in(workdir, is_chief):
    manager = checkpoints.make_manager(workdir, settings.train.keep_checkpoints)
    training = build_training(settings, splits, manager)
    checkpoint_bytes = checkpoints.state_bytes(training.state)
    workdirs.check_space(workdir, checkpoint_bytes)
    writer = metrics.MetricWriter(workdir, enabled=is_chief)
    if is_chief:
      with open(os.path.join(workdir, 'config.json'), 'w') as f:
        json.dump(settings.to_dict(), f, indent=2)
    _log_start(settings, training)
    run = _Run(settings, workdir, training, manager, writer, splits,
               checkpoint_bytes)
    with workdirs.full_disk_reported(
        workdir, checkpoint_bytes, lambda: checkpoints.newest_complete(manager)):
      try:
        # Caught from the first step on: before it, Ctrl-C just ends the run.
        with workdirs.StopSignals() as signals:
          return _train_loop(run, training, signals)
      finally:
        try:
          manager.wait_until_finished()
        finally:
          checkpoints.purge_deleted(manager)
          writer.close()


def _train_loop(run, training, signals):
  """Steps, and at each step what is due: log, evaluate and draw, save, stop."""
  train = run.settings.train
  state = training.state
  step = int(state['step'])
  started = time.time()
  pending = None  # a step's metrics, read one step late: dispatch stays async
  while step < training.num_steps:
    state, step_metrics = training.step(state, step)
    step += 1
    pending = run.absorb(pending, (step, step_metrics))
    out_of_time = (train.time_budget_minutes > 0 and
                   time.time() - started > train.time_budget_minutes * 60)
    end = step == training.num_steps or out_of_time
    stop = signals.received is not None
    log = step % train.log_every == 0 or end or stop
    evaluate_now = step % train.eval_every == 0 or end
    save = (step % train.checkpoint_every == 0 or evaluate_now or stop or
            run.minutes_since_save() >= train.checkpoint_every_minutes > 0)
    if log or save:
      pending = run.absorb(pending)  # the metrics of this very step
    if log:
      run.report(step, state)
    if save:  # after evaluating, if that is due too
      run.evaluate_and_save(state, step, evaluate_now)
    if stop:
      logging.warning('%s: checkpointed step %d; exiting', signals.received,
                      step)
      return state
    if out_of_time:
      logging.info('time budget of %.1f min spent at step %d',
                   train.time_budget_minutes, step)
      break
  run.finish(state, step)
  return state


def _log_start(settings, training):
  step = int(training.state['step'])
  logging.info('%s at step %d: %d parameters, %s on %d %s device(s)',
               'resuming' if step else 'starting', step,
               train_state.parameter_count(training.state['params']),
               settings.data.name, jax.device_count(), jax.default_backend())
  if jax.default_backend() == 'cpu':
    hint = host_memory.huge_page_hint(host_memory.thp_mode())
    if hint:
      logging.info(hint)


class _Run:
  """The host side of a run: metrics, evaluations, pictures and checkpoints."""

  def __init__(self, settings, workdir, training, manager, writer, splits,
               checkpoint_bytes):
    self.settings = settings
    self._workdir = workdir
    self._manager = manager
    self._writer = writer
    self._splits = splits
    self._checkpoint_bytes = checkpoint_bytes
    self._steps_per_epoch = training.steps_per_epoch
    self._num_steps = training.num_steps
    self._evaluator = evaluate.Evaluator(settings, training.graphdef,
                                         training.mesh)
    self._pictures = settings.model.make_pictures(
        training.graphdef, training.mesh, settings.data.binarization,
        settings.sample)
    self._progress = metrics.Progress(writer, training.num_steps,
                                      settings.train.batch_size,
                                      int(training.state['step']))
    self._valid = {}  # step -> validation metrics
    self._test = {}  # step -> test metrics
    self._saved = set(manager.all_steps())
    self._last_save = time.time()

  def absorb(self, pending, new=None):
    """Adds pending (step, metrics) to the averages; returns new."""
    if pending is not None:
      step, step_metrics = pending
      step_metrics = sharding.to_host(step_metrics)
      if _finite_or_skipped(step, step_metrics, self._manager,
                            self.settings.train.skip_nonfinite_updates):
        self._progress.add(step_metrics)  # skipped steps stay out of the means
    return new

  def minutes_since_save(self):
    return (time.time() - self._last_save) / 60.0

  def report(self, step, state):
    self._progress.report(
        step, dict(skipped_updates=skipped_updates(state['opt_state'])))

  def evaluate_and_save(self, state, step, evaluate_now):
    """Validation (and test) metrics and pictures if due, then a checkpoint."""
    started = time.time()
    if evaluate_now and step not in self._valid:
      self._valid[step] = self._evaluate(state, step, 'valid')
      if self.settings.train.eval_test:  # reported, never used to choose
        self._test[step] = self._evaluate(state, step, 'test')
      self._pictures(train_state.model_params(state),
                     os.path.join(self._workdir, 'samples', f'step_{step}'),
                     self._splits.test, self._writer, step)
    self._save(state, step)
    self._progress.leave_out(time.time() - started)

  def finish(self, state, step):
    """The end: test (with the IW bound if asked) and eval_<step>.json.

    Validation and the last checkpoint are the loop's, but for a run resumed
    at its end, which evaluates and saves them here.
    """
    self.evaluate_and_save(state, step, evaluate_now=True)
    iw_samples = self.settings.eval.iw_samples
    test = self._test.get(step)
    if test is None or iw_samples:
      test = self._evaluate(state, step, 'test', iw_samples)
    if jax.process_index() == 0:
      with open(os.path.join(self._workdir, f'eval_{step}.json'), 'w') as f:
        json.dump(dict(step=step, num_steps=self._num_steps,
                       **self._valid[step], **test), f, indent=2)

  def _save(self, state, step):
    self._last_save = time.time()
    if step in self._saved:
      return
    # A save that cannot fit is refused before Orbax starts writing it.
    workdirs.check_space(self._workdir, self._checkpoint_bytes, checkpoints=1,
                         newest=checkpoints.newest_complete(self._manager))
    self._saved.add(step)
    ranking = None
    if step in self._valid:
      metric = f'valid_{self.settings.model.SELECTION_METRIC}'
      ranking = {checkpoints.RANKING_KEY: self._valid[step][metric]}
    checkpoints.save(self._manager, step, state, self.settings.model, ranking)

  def _evaluate(self, state, step, split, iw_samples=0):
    """The split's metrics for the run's model (the moving average, if kept).

    With a moving average, validation also reports the training parameters'
    figures, prefixed live_, so what the average buys is on the curve.
    """
    results = evaluate.evaluate_split(
        self._evaluator, train_state.model_params(state), self._splits,
        iw_samples, split)
    logged = dict(results)
    if split == 'valid' and train_state.EMA in state:
      live = evaluate.evaluate_split(self._evaluator, state['params'],
                                     self._splits, 0, split)
      logged.update({f'live_{name}': value for name, value in live.items()})
    self._writer.scalars(step, dict(logged, epoch=step / self._steps_per_epoch))
    logging.info('step %d %s', step, metrics.format_values(logged))
    return results


def _finite_or_skipped(step, step_metrics, manager, skip_nonfinite):
  """False for a step whose update optax.apply_if_finite skipped; True if
  finite; else raises NonFiniteLossError."""
  if all(np.isfinite(float(v)) for v in step_metrics.values()):
    return True
  # apply_if_finite skips exactly the updates whose gradient is non-finite.
  if (skip_nonfinite and not np.isfinite(float(step_metrics['grad_norm'])) and
      np.isfinite(float(step_metrics['param_norm']))):
    logging.warning('step %d: non-finite loss or gradient (%s); update skipped',
                    step, metrics.format_values(step_metrics))
    return False
  raise NonFiniteLossError(
      f'non-finite loss or gradient at step {step} '
      f'({metrics.format_values(step_metrics)}); the last good checkpoint '
      f'(step {manager.latest_step()}) is kept. Lower train.learning_rate or '
      'set train.skip_nonfinite_updates=True.')
