"""The config, parsed once: a ConfigDict in, frozen typed pieces out.

Every mode parses and validates the whole config here, before any file is
written, and passes the pieces down: the model's frozen config (DRAW's or
the classifier's), the data, train, eval and sample settings.
"""
import dataclasses
import operator
from typing import Union

import jax

from draw_jax import classifier
from draw_jax import datasets
from draw_jax import input_pipeline
from draw_jax import layers
from draw_jax import model as draw_model
from draw_jax import objectives

TASKS = ('generate', 'classify')
LR_SCHEDULES = ('constant', 'cosine')
SAMPLE_OUTPUTS = ('grid', 'evolution', 'gif', 'reconstruction', 'filters')


class ConfigError(ValueError):
  """A config value that cannot run; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Data:
  name: str
  dir: str  # '' -> $DRAW_DATA_DIR -> tensorflow-datasets
  binarization: str  # resolved: never '' here
  max_examples: int
  fresh_scenes: bool
  num_classes: int


@dataclasses.dataclass(frozen=True)
class Train:
  batch_size: int
  learning_rate: float
  lr_schedule: str
  lr_end_fraction: float
  lr_decay_fraction: float
  lr_drops: tuple  # ((step, factor), ...), steps increasing
  warmup_steps: int
  grad_clip_norm: float
  kl_warmup_steps: int
  num_steps: int
  num_epochs: int
  time_budget_minutes: float
  checkpoint_every: int
  checkpoint_every_minutes: float
  keep_checkpoints: int
  eval_every: int
  eval_test: bool
  log_every: int
  seed: int
  skip_nonfinite_updates: bool
  ema_decay: float  # 0: no moving average of the parameters
  init_from: str
  init_continue: bool


@dataclasses.dataclass(frozen=True)
class Eval:
  batch_size: int
  iw_samples: int
  iw_samples_per_pass: int
  iw_batch_size: int
  iw_examples: int
  split: str
  step: int  # -1: the latest


@dataclasses.dataclass(frozen=True)
class Sample:
  num_samples: int
  seed: int
  upscale: int
  outputs: tuple
  gif_frame_seconds: float
  gif_hold_frames: int


@dataclasses.dataclass(frozen=True)
class Settings:
  task: str  # one of TASKS
  model: Union[draw_model.DrawConfig, classifier.ClassifierConfig]
  data: Data
  train: Train
  eval: Eval
  sample: Sample

  def to_dict(self):
    return dict(task=self.task, model=dataclasses.asdict(self.model),
                **{name: dataclasses.asdict(getattr(self, name))
                   for name in ('data', 'train', 'eval', 'sample')})


def parse(config, device_count=None):
  """Validates the ConfigDict whole and returns its Settings."""
  if config.data.name not in datasets.DATASETS:
    raise ConfigError(f'data.name={config.data.name!r} is unknown; choose one '
                      f'of {sorted(datasets.DATASETS)}')
  dataset = datasets.DATASETS[config.data.name]
  try:
    model_config = _model_config(config, dataset)
    data = Data(**{**config.data.to_dict(),
                   'binarization': _binarization(config, dataset)})
    train = Train(**{**config.train.to_dict(),
                     'lr_drops': _lr_drops(config.train.lr_drops)})
    evaluation = Eval(**config.eval.to_dict())
    sample = Sample(**{**config.sample.to_dict(),
                       'outputs': _sample_outputs(config.sample.outputs)})
  except TypeError as error:  # a config file that lacks or adds a field
    raise ConfigError(f'the config does not match draw_jax: {error}') from None
  settings = Settings(config.task, model_config, data, train, evaluation,
                      sample)
  _check(settings, device_count or jax.device_count(), dataset)
  return settings


def train_examples(data, dataset):
  """The training images a run on this data sees: max_examples may cut them."""
  if data.max_examples > 0:
    return min(data.max_examples, dataset.train_examples)
  return dataset.train_examples


def _lr_drops(drops):
  """((step, factor), ...) with steps > 0 increasing and factors > 0."""
  try:
    pairs = tuple((operator.index(step), float(factor))
                  for step, factor in drops)
  except (TypeError, ValueError):  # operator.index refuses 3900.5
    raise ConfigError(f'train.lr_drops must be ((step, factor), ...), got '
                      f'{drops!r}') from None
  steps = [step for step, _ in pairs]
  if (any(step <= 0 for step in steps) or steps != sorted(set(steps))
      or any(not factor > 0 for _, factor in pairs)):
    raise ConfigError(f'train.lr_drops needs steps > 0, increasing, and '
                      f'factors > 0; got {drops!r}')
  return pairs


def _model_config(config, dataset):
  """The frozen model description, with the data's image shape."""
  if config.task not in TASKS:
    raise ConfigError(f'task={config.task!r} is unknown; choose one of {TASKS}')
  height, width, channels = dataset.shape
  shape = dict(height=height, width=width, channels=channels)
  if config.task == 'classify':
    if not dataset.labelled:
      labelled = [name for name, spec in datasets.DATASETS.items()
                  if spec.labelled]
      raise ConfigError(f'task=classify needs labels, and data.name='
                        f'{config.data.name!r} has none; choose one of '
                        f'{labelled}')
    return classifier.ClassifierConfig(
        num_classes=config.data.num_classes, **shape,
        **config.classifier.to_dict())
  return draw_model.DrawConfig(**shape, **config.model.to_dict())


def _binarization(config, dataset):
  method = config.data.binarization or dataset.binarization
  if method not in datasets.BINARIZATIONS:
    raise ConfigError(f'data.binarization={method!r} is unknown; choose one of '
                      f'{datasets.BINARIZATIONS}')
  if dataset.binarization == 'none' and method != 'none':
    raise ConfigError(f'data.binarization must be none for '
                      f'{config.data.name}: it is already the fixed '
                      'binarization the paper reports on')
  if (config.task == 'generate' and
      config.model.likelihood == 'discretized_logistic' and
      method != 'intensity'):
    raise ConfigError('model.likelihood=discretized_logistic models 8-bit '
                      "intensities: it needs data.binarization='intensity', "
                      f'got {method!r}')
  return method


def _sample_outputs(outputs):
  names = tuple(name.strip() for name in outputs.split(',') if name.strip())
  unknown = sorted(set(names) - set(SAMPLE_OUTPUTS))
  if unknown:
    raise ConfigError(f'sample.outputs has unknown {unknown}; choose from '
                      f'{SAMPLE_OUTPUTS}')
  return names


_POSITIVE = ('train.batch_size', 'train.learning_rate', 'train.num_steps',
             'train.checkpoint_every', 'train.eval_every', 'train.log_every',
             'train.keep_checkpoints', 'eval.batch_size',
             'eval.iw_samples_per_pass', 'eval.iw_batch_size',
             'sample.num_samples', 'sample.upscale')
_NON_NEGATIVE = ('train.num_epochs', 'train.warmup_steps',
                 'train.kl_warmup_steps',
                 'train.checkpoint_every_minutes', 'train.time_budget_minutes',
                 'eval.iw_samples', 'eval.iw_examples')
# Batches that are split over the devices.
_PER_DEVICE = ('train.batch_size', 'eval.batch_size', 'eval.iw_batch_size')


def _value(settings, path):
  group, field = path.split('.')
  return getattr(getattr(settings, group), field)


def _check(settings, device_count, dataset):
  _check_model(settings.model)
  for path in _POSITIVE:
    value = _value(settings, path)
    if isinstance(value, bool) or not value > 0:
      raise ConfigError(f'{path} must be > 0, got {value!r}')
  for path in _NON_NEGATIVE:
    if _value(settings, path) < 0:
      raise ConfigError(f'{path} must be >= 0, got {_value(settings, path)!r}')
  train = settings.train
  if not 0.0 <= train.lr_end_fraction <= 1.0:
    raise ConfigError('train.lr_end_fraction must be in [0, 1], got '
                      f'{train.lr_end_fraction!r}')
  if train.lr_schedule not in LR_SCHEDULES:
    raise ConfigError(f'train.lr_schedule={train.lr_schedule!r} is unknown; '
                      f'choose one of {LR_SCHEDULES}')
  if not 0.0 <= train.ema_decay < 1.0:
    raise ConfigError(f'train.ema_decay must be in [0, 1), got '
                      f'{train.ema_decay!r}')
  if train.kl_warmup_steps and settings.model.LOSS != 'neg_elbo':
    raise ConfigError('train.kl_warmup_steps weighs the KL of the -ELBO; '
                      f'{settings.model.CONFIG_GROUP} has none')
  if train.init_continue and not train.init_from:
    raise ConfigError('train.init_continue=True needs train.init_from')
  num_steps = input_pipeline.num_steps(
      train, train_examples(settings.data, dataset))
  if train.warmup_steps >= num_steps:
    raise ConfigError(f'train.warmup_steps={train.warmup_steps} is not below '
                      f"the run's {num_steps} steps")
  if not 0.0 < train.lr_decay_fraction <= 1.0:
    raise ConfigError('train.lr_decay_fraction must be in (0, 1], got '
                      f'{train.lr_decay_fraction!r}')
  if train.lr_decay_fraction < 1.0 and (train.lr_schedule != 'cosine' or
                                        train.lr_decay_fraction * num_steps < 1):
    raise ConfigError(f'train.lr_decay_fraction={train.lr_decay_fraction} '
                      "needs lr_schedule='cosine' and at least one step of "
                      f"decay in the run's {num_steps}")
  if settings.eval.split not in ('valid', 'test'):
    raise ConfigError(f"eval.split must be 'valid' or 'test', got "
                      f'{settings.eval.split!r}')
  for path in _PER_DEVICE:
    if _value(settings, path) % device_count:
      raise ConfigError(f'{path}={_value(settings, path)} does not divide '
                        f'evenly over {device_count} devices')


# Fields of each model config that must be integers >= 1.
_POSITIVE_MODEL_FIELDS = ('T', 'enc_size', 'dec_size', 'z_size', 'read_n',
                          'write_n', 'hidden_size', 'glimpse', 'num_classes',
                          'scan_unroll')


def _check_model(model_config):
  """The model's fields, each error named by its config path."""
  group = model_config.CONFIG_GROUP
  name = lambda field: ('data.num_classes' if field == 'num_classes'
                        else f'{group}.{field}')
  fields = dataclasses.asdict(model_config)
  for field in _POSITIVE_MODEL_FIELDS:
    if field in fields and not _positive_int(fields[field]):
      raise ConfigError(f'{name(field)} must be an integer >= 1, got '
                        f'{fields[field]!r}')
  largest_side = max(model_config.height, model_config.width)
  for field in ('read_n', 'write_n', 'glimpse'):
    if (field in fields and fields.get('attention', True) and
        fields[field] > largest_side):
      raise ConfigError(
          f'{name(field)}={fields[field]} is larger than the '
          f'{model_config.height}x{model_config.width} image')
  if fields.get('likelihood', 'bernoulli') not in objectives.LIKELIHOODS:
    raise ConfigError(f'{group}.likelihood must be one of '
                      f'{objectives.LIKELIHOODS}, got {fields["likelihood"]!r}')
  if model_config.compute_dtype not in layers.DTYPES:
    raise ConfigError(f'{group}.compute_dtype must be one of '
                      f'{sorted(layers.DTYPES)}, got '
                      f'{model_config.compute_dtype!r}')
  if model_config.remat not in layers.REMAT_POLICIES:
    raise ConfigError(f'{group}.remat must be one of '
                      f'{sorted(layers.REMAT_POLICIES)}, got '
                      f'{model_config.remat!r}')


def _positive_int(value):
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1

