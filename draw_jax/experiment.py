"""What every mode builds from a config: checks, mesh, model, optimizer, state.

The ConfigDict stops here: the model gets a frozen DrawConfig (or, for
config.task='classify', a ClassifierConfig) and the jitted functions close
over plain Python values.
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from draw_jax import checkpoints
from draw_jax import classifier
from draw_jax import input_pipeline
from draw_jax import model as draw_model
from draw_jax import tasks

DATA_AXIS = 'data'
LR_SCHEDULES = ('constant', 'cosine')


class ConfigError(ValueError):
  """A config value that cannot run; the message names the field."""


def build_model_config(config):
  """The frozen model description: config.model plus the data's image shape."""
  if config.data.name not in input_pipeline.IMAGE_SHAPES:
    raise ConfigError(f'data.name={config.data.name!r} is unknown; choose one '
                      f'of {sorted(input_pipeline.IMAGE_SHAPES)}')
  if config.task not in tasks.TASKS:
    raise ConfigError(f'task={config.task!r} is unknown; choose one of '
                      f'{tasks.TASKS}')
  height, width, channels = input_pipeline.IMAGE_SHAPES[config.data.name]
  try:
    if config.task == tasks.CLASSIFY:
      # The classifier reads these model.* keys; the generative ones it ignores.
      fields = {field: config.model[key]
                for field, key in classifier.MODEL_KEYS.items()}
      return classifier.ClassifierConfig(
          height=height, width=width, channels=channels,
          num_classes=config.data.num_classes, **fields)
    return draw_model.DrawConfig(height=height, width=width, channels=channels,
                                 **config.model.to_dict())
  except (TypeError, ValueError) as error:
    raise ConfigError(str(error)) from None


def binarization(config):
  method = config.data.binarization or input_pipeline.default_binarization(
      config.data.name)
  if method not in input_pipeline.BINARIZATION_METHODS:
    raise ConfigError(f'data.binarization={method!r} is unknown; choose one of '
                      f'{input_pipeline.BINARIZATION_METHODS}')
  if config.data.name == 'binarized_mnist' and method != 'none':
    raise ConfigError('data.binarization must be none for binarized_mnist: it is '
                      'already the fixed binarization the paper reports on')
  if config.model.likelihood == 'discretized_logistic' and method != 'intensity':
    raise ConfigError('model.likelihood=discretized_logistic models 8-bit '
                      "intensities: it needs data.binarization='intensity', "
                      f'got {method!r}')
  return method


def _require_positive(config, path):
  group, field = path.split('.')
  value = config[group][field]
  if isinstance(value, bool) or not value > 0:
    raise ConfigError(f'{path} must be > 0, got {value!r}')


def validate(config, device_count=None):
  """Checks the whole config before any file is written; returns DrawConfig."""
  model_config = build_model_config(config)
  binarization(config)
  if (config.task == tasks.CLASSIFY and
      config.data.name not in input_pipeline.LABELLED_DATASETS):
    raise ConfigError(f'task=classify needs labels, and data.name='
                      f'{config.data.name!r} has none; choose one of '
                      f'{input_pipeline.LABELLED_DATASETS}')
  for path in ('train.batch_size', 'train.learning_rate', 'train.num_steps',
               'train.checkpoint_every', 'train.eval_every', 'train.log_every',
               'train.keep_checkpoints', 'eval.batch_size',
               'eval.iw_samples_per_pass', 'eval.iw_batch_size',
               'sample.num_samples', 'sample.upscale'):
    _require_positive(config, path)
  if config.train.num_epochs < 0:
    raise ConfigError(f'train.num_epochs must be >= 0, got '
                      f'{config.train.num_epochs!r}')
  if not 0.0 <= config.train.lr_end_fraction <= 1.0:
    raise ConfigError(f'train.lr_end_fraction must be in [0, 1], got '
                      f'{config.train.lr_end_fraction!r}')
  if config.train.checkpoint_every_minutes < 0:
    raise ConfigError(f'train.checkpoint_every_minutes must be >= 0, got '
                      f'{config.train.checkpoint_every_minutes!r}')
  if config.train.init_continue and not config.train.init_from:
    raise ConfigError('train.init_continue=True needs train.init_from')
  if config.train.lr_schedule not in LR_SCHEDULES:
    raise ConfigError(f'train.lr_schedule={config.train.lr_schedule!r} is '
                      f'unknown; choose one of {LR_SCHEDULES}')
  if config.eval.split not in ('valid', 'test'):
    raise ConfigError(f"eval.split must be 'valid' or 'test', got "
                      f'{config.eval.split!r}')
  device_count = device_count or jax.device_count()
  for path in ('train.batch_size', 'eval.batch_size', 'eval.iw_batch_size'):
    group, field = path.split('.')
    if config[group][field] % device_count:
      raise ConfigError(f'{path}={config[group][field]} does not divide evenly '
                        f'over {device_count} devices')
  return model_config


# ---- devices --------------------------------------------------------------


def make_mesh():
  """A 1-D mesh over every device; the batch is split along DATA_AXIS."""
  # Auto axes: XLA propagates the batch sharding from one constraint per step.
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharded(mesh):
  return NamedSharding(mesh, P(DATA_AXIS))


# ---- model, optimizer and train state ------------------------------------


def create_model(model_config, init_key):
  return tasks.create_model(model_config, nnx.Rngs(init_key))


def steps_per_epoch(num_examples, batch_size):
  return num_examples // batch_size  # the last partial batch is dropped


def total_steps(train_config, num_examples):
  """train.num_epochs whole epochs when set, else train.num_steps."""
  if train_config.num_epochs > 0:
    return train_config.num_epochs * steps_per_epoch(num_examples,
                                                     train_config.batch_size)
  return train_config.num_steps


def learning_rate_schedule(train_config, num_steps):
  """Linear warm-up, then constant or cosine down to lr_end_fraction x peak."""
  peak = train_config.learning_rate
  if train_config.warmup_steps >= num_steps:
    raise ConfigError(f'train.warmup_steps={train_config.warmup_steps} is not '
                      f'below the run\'s {num_steps} steps')
  if train_config.lr_schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, max(train_config.warmup_steps, 1), num_steps,
        end_value=peak * train_config.lr_end_fraction)
  if train_config.warmup_steps:
    return optax.linear_schedule(0.0, peak, train_config.warmup_steps)
  return optax.constant_schedule(peak)


def create_optimizer(train_config, num_steps):
  """Adam after global-norm clipping; optionally skips non-finite updates."""
  optimizer = optax.chain(
      optax.clip_by_global_norm(train_config.grad_clip_norm),
      optax.adam(learning_rate_schedule(train_config, num_steps)))
  if train_config.skip_nonfinite_updates:
    # Skips (and counts) updates whose gradients hold a NaN or Inf.
    optimizer = optax.apply_if_finite(optimizer, max_consecutive_errors=1 << 30)
  return optimizer


def initial_state(model_config, optimizer, init_key):
  """(graphdef, state): state is a plain dict of arrays, ready for Orbax."""
  graphdef, params = nnx.split(create_model(model_config, init_key))
  params = nnx.to_pure_dict(params)
  state = dict(step=jnp.zeros((), jnp.int32), params=params,
               opt_state=optimizer.init(params))
  return graphdef, state


def graphdef_of(model_config):
  """The model's structure, without allocating its parameters."""
  abstract_model = nnx.eval_shape(
      lambda: create_model(model_config, jax.random.key(0)))
  return nnx.split(abstract_model)[0]


def create_train_state(model_config, optimizer, init_key, mesh):
  """A fresh state, built by jit straight into its replicated sharding.

  Every process computes the same state from the same key, so a
  multi-process run needs no broadcast.
  """
  return jax.jit(lambda: initial_state(model_config, optimizer, init_key)[1],
                 out_shardings=replicated(mesh))()


def to_host(tree):
  """numpy copies of replicated arrays, also when they span several processes."""
  return jax.tree.map(lambda leaf: np.asarray(leaf.addressable_data(0)), tree)


def abstract_state(model_config, optimizer, init_key):
  """Shapes and dtypes of the train state, without allocating it."""
  return jax.eval_shape(lambda: initial_state(model_config, optimizer, init_key)[1])


def parameter_count(params):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))


# ---- a trained model, for --mode=eval and --mode=sample -------------------


@dataclasses.dataclass
class TrainedRun:
  model_config: draw_model.DrawConfig
  graphdef: object
  params: dict
  step: int
  mesh: object
  splits: input_pipeline.Splits


def run_keys(seed):
  """Independent streams for init, data order and training noise."""
  init_key, data_key, train_key = jax.random.split(jax.random.key(seed), 3)
  return init_key, data_key, train_key


def abstract_params(model_config):
  """{'step', 'params'} shapes: what eval, sample and init_from restore."""
  state = jax.eval_shape(
      lambda: initial_state(model_config, optax.identity(), jax.random.key(0))[1])
  return dict(step=state['step'], params=state['params'])


def state_from_params(params, step, optimizer, mesh):
  """A train state holding params at step, with a fresh optimizer state."""
  return jax.jit(
      lambda params: dict(step=jnp.asarray(step, jnp.int32), params=params,
                          opt_state=optimizer.init(params)),
      out_shardings=replicated(mesh))(params)


def load_params(model_config, directory, mesh, step=None, what='--workdir'):
  """(params, step) from a training workdir or a pretrained/ folder."""
  if not os.path.isdir(checkpoints.checkpoint_dir(directory)):
    raise FileNotFoundError(
        f'{what}={directory} holds no checkpoints '
        f'(no folder {checkpoints.checkpoint_dir(directory)})')
  manager = checkpoints.make_manager(directory, read_only=True)
  restored = checkpoints.restore_latest(
      manager, abstract_params(model_config), model_config, replicated(mesh),
      step=step, partial=True)
  if restored is None:
    raise FileNotFoundError(f'no checkpoint in {manager.directory}; train '
                            'first with --mode=train')
  return restored['params'], int(restored['step'])


def load_trained(config, workdir):
  """Validates config, then restores its parameters (eval.step, or latest)."""
  model_config = validate(config)
  mesh = make_mesh()
  step = None if config.eval.step < 0 else config.eval.step
  params, step = load_params(model_config, workdir, mesh, step)
  splits = input_pipeline.load_splits(config.data.name, config.data.dir,
                                      config.data.max_examples)
  return TrainedRun(model_config, graphdef_of(model_config), params, step,
                    mesh, splits)
