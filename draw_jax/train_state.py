"""The train state: step, parameters and optimizer state, as a plain dict.

A plain dict of arrays is what Orbax saves and jit donates; the model's
structure (its graphdef) is kept apart and merged back inside jitted code.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from draw_jax import sharding


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
  """Linear warm-up, then constant or cosine down to lr_end_fraction x peak."""
  peak = train.learning_rate
  if train.lr_schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, max(train.warmup_steps, 1), num_steps,
        end_value=peak * train.lr_end_fraction)
  if train.warmup_steps:
    return optax.linear_schedule(0.0, peak, train.warmup_steps)
  return optax.constant_schedule(peak)


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


def graphdef(model_config):
  """The model's structure, without allocating its parameters."""
  abstract_model = nnx.eval_shape(
      lambda: model_config.make_model(nnx.Rngs(jax.random.key(0))))
  return nnx.split(abstract_model)[0]


def _initial(model_config, optimizer, init_key):
  params = nnx.to_pure_dict(
      nnx.split(model_config.make_model(nnx.Rngs(init_key)))[1])
  return dict(step=jnp.zeros((), jnp.int32), params=params,
              opt_state=optimizer.init(params))


def create(model_config, optimizer, init_key, mesh=None, abstract=False):
  """A fresh state, built by jit straight into its replicated sharding.

  Every process computes the same state from the same key, so a
  multi-process run needs no broadcast. abstract=True: shapes and dtypes
  only, nothing allocated.
  """
  if abstract:
    return jax.eval_shape(lambda: _initial(model_config, optimizer, init_key))
  return jax.jit(lambda key: _initial(model_config, optimizer, key),
                 out_shardings=sharding.replicated(mesh))(init_key)


def abstract_params(model_config):
  """{'step', 'params'} shapes: what eval, sample and init_from restore."""
  state = create(model_config, optax.identity(), jax.random.key(0),
                 abstract=True)
  return dict(step=state['step'], params=state['params'])


def from_params(params, step, optimizer, mesh):
  """A train state holding params at step, with a fresh optimizer state.

  Adam's moments start afresh, but the learning-rate schedule goes on from
  step: it counts its own steps, and a fresh count would warm up again and
  push every later decay and drop back by step.
  """
  def state(params):
    step_array = jnp.asarray(step, jnp.int32)
    opt_state = optax.tree_utils.tree_set(
        optimizer.init(params), _in_schedule_state, count=step_array)
    return dict(step=step_array, params=params, opt_state=opt_state)
  return jax.jit(state, out_shardings=sharding.replicated(mesh))(params)


def schedule_count(opt_state):
  """The step the learning-rate schedule is at (it lags skipped updates)."""
  return optax.tree_utils.tree_get(opt_state, 'count',
                                   filtering=_in_schedule_state)


def _in_schedule_state(path, value):
  del value
  return getattr(path[-1], 'tuple_name', None) == 'ScaleByScheduleState'


def parameter_count(params):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
