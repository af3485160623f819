"""The train state: step, parameters and optimizer state, as a plain dict,
with the parameters' moving average when train.ema_decay > 0.

A plain dict of arrays is what Orbax saves and jit donates; the model's
structure (its graphdef) is kept apart and merged back inside jitted code.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from draw_jax import sharding

# The train state's key for the parameters' exponential moving average.
EMA = 'ema_params'


def run_keys(seed):
  """Independent streams for init, data order and training noise."""
  init_key, data_key, train_key = jax.random.split(jax.random.key(seed), 3)
  return init_key, data_key, train_key


def learning_rate_schedule(train, num_steps):
  """Warm-up, then constant or cosine, times each of train.lr_drops' factors."""
  base = _base_schedule(train, num_steps)
  if not train.lr_drops:
    return base
  drops = optax.piecewise_constant_schedule(1.0, dict(train.lr_drops))
  return lambda count: base(count) * drops(count)


def _base_schedule(train, num_steps):
  """Linear warm-up, then constant, or constant and then a cosine down to
  lr_end_fraction x peak over the run's last lr_decay_fraction."""
  peak = train.learning_rate
  constant = (optax.linear_schedule(0.0, peak, train.warmup_steps)
              if train.warmup_steps else optax.constant_schedule(peak))
  if train.lr_schedule != 'cosine':
    return constant
  decay_start = max(train.warmup_steps,
                    round((1.0 - train.lr_decay_fraction) * num_steps))
  return optax.join_schedules(
      [constant, optax.cosine_decay_schedule(
          peak, num_steps - decay_start, alpha=train.lr_end_fraction)],
      [decay_start])


def create_optimizer(train, learning_rate):
  """Adam at the schedule learning_rate after global-norm clipping.

  Optionally skips non-finite updates.
  """
  optimizer = optax.chain(
      optax.clip_by_global_norm(train.grad_clip_norm),
      optax.adam(learning_rate))
  if train.skip_nonfinite_updates:
    # Skips (and counts) updates whose gradients hold a NaN or Inf.
    optimizer = optax.apply_if_finite(optimizer, max_consecutive_errors=1 << 30)
  return optimizer


def abstract_model(model_config):
  """The model with shapes for parameters: nothing allocated."""
  return nnx.eval_shape(
      lambda: model_config.build(nnx.Rngs(jax.random.key(0))))


def graphdef(model_config):
  """The model's structure, without allocating its parameters."""
  return nnx.split(abstract_model(model_config))[0]


def _initial(model_config, optimizer, init_key, ema):
  params = nnx.to_pure_dict(
      nnx.split(model_config.build(nnx.Rngs(init_key)))[1])
  return _with_ema(dict(step=jnp.zeros((), jnp.int32), params=params,
                        opt_state=optimizer.init(params)), ema)


def _with_ema(state, ema):
  """state, with a moving average that starts at its parameters if ema."""
  if ema:
    # Its own buffers (not the same arrays twice), since the step donates both.
    state[EMA] = jax.tree.map(jnp.copy, state['params'])
  return state


def create(model_config, optimizer, init_key, mesh=None, abstract=False,
           ema=False):
  """A fresh state, built by jit straight into its replicated sharding.

  Every process computes the same state from the same key, so a
  multi-process run needs no broadcast. abstract=True: shapes and dtypes
  only, nothing allocated.
  """
  initial = lambda key: _initial(model_config, optimizer, key, ema)
  if abstract:
    return jax.eval_shape(initial, init_key)
  return jax.jit(initial, out_shardings=sharding.replicated(mesh))(init_key)


def abstract_params(model_config):
  """{'step', 'params'} shapes: what eval, sample and init_from restore."""
  state = create(model_config, optax.identity(), jax.random.key(0),
                 abstract=True)
  return dict(step=state['step'], params=state['params'])


def from_params(params, step, optimizer, mesh, ema=False):
  """A train state holding params at step, with a fresh optimizer state.

  Adam's moments start afresh, but the learning-rate schedule goes on from
  step: it counts its own steps, and a fresh count would warm up again and
  push every later decay and drop back by step. The moving average, if any,
  starts at params.
  """
  def state(params):
    step_array = jnp.asarray(step, jnp.int32)
    opt_state = optax.tree_utils.tree_set(
        optimizer.init(params), _in_schedule_state, count=step_array)
    return _with_ema(dict(step=step_array, params=params, opt_state=opt_state),
                     ema)
  return jax.jit(state, out_shardings=sharding.replicated(mesh))(params)


def with_ema_from_params(state, mesh):
  """A restored state that has no moving average yet, given one at its params."""
  return jax.jit(lambda state: _with_ema(dict(state), True),
                 out_shardings=sharding.replicated(mesh))(state)


def ema_decay_at(decay, step):
  """The average's decay at step: ramped up, (1 + step) / (10 + step) at most.

  So a run from scratch forgets its random start within tens of steps, not
  the 1 / (1 - decay) that the full decay would take.
  """
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def update_ema(ema_params, params, decay, step):
  """ema <- d ema + (1 - d) params, with d = ema_decay_at(decay, step)."""
  return optax.incremental_update(params, ema_params,
                                  1.0 - ema_decay_at(decay, step))


def model_params(state):
  """The parameters a run is judged by: the moving average's, if it keeps one."""
  return state.get(EMA, state['params'])


def schedule_count(opt_state):
  """The step the learning-rate schedule is at (it lags skipped updates)."""
  return optax.tree_utils.tree_get(opt_state, 'count',
                                   filtering=_in_schedule_state)


def _in_schedule_state(path, value):
  del value
  return getattr(path[-1], 'tuple_name', None) == 'ScaleByScheduleState'


def parameter_count(params):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
