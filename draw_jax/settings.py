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
from draw_jax import input_pipeline
from draw_jax import model as draw_model

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
  num_classes: int


@dataclasses.dataclass(frozen=True)
class Train:
  batch_size: int
  learning_rate: float
  lr_schedule: str
  lr_end_fraction: float
  lr_drops: tuple  # ((step, factor), ...), steps increasing
  warmup_steps: int
  grad_clip_norm: float
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
  model: Union[draw_model.DrawConfig, classifier.ClassifierConfig]
  data: Data
  train: Train
  eval: Eval
  sample: Sample

  def to_dict(self):
    return dict(model=dataclasses.asdict(self.model),
                **{name: dataclasses.asdict(getattr(self, name))
                   for name in ('data', 'train', 'eval', 'sample')})


def parse(config, device_count=None):
  """Validates the ConfigDict whole and returns its Settings."""
  model_config = _model_config(config)  # first: it checks data.name
  try:
    data = Data(**{**config.data.to_dict(),
                   'binarization': _binarization(config)})
    train = Train(**{**config.train.to_dict(),
                     'lr_drops': _lr_drops(config.train.lr_drops)})
    evaluation = Eval(**config.eval.to_dict())
    sample = Sample(**{**config.sample.to_dict(),
                       'outputs': _sample_outputs(config.sample.outputs)})
  except TypeError as error:  # a config file that lacks or adds a field
    raise ConfigError(f'the config does not match draw_jax: {error}') from None
  settings = Settings(model_config, data, train, evaluation, sample)
  _check(settings, device_count or jax.device_count())
  return settings


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


def _model_config(config):
  """The frozen model description, with the data's image shape."""
  if config.data.name not in input_pipeline.IMAGE_SHAPES:
    raise ConfigError(f'data.name={config.data.name!r} is unknown; choose one '
                      f'of {sorted(input_pipeline.IMAGE_SHAPES)}')
  if config.task not in TASKS:
    raise ConfigError(f'task={config.task!r} is unknown; choose one of {TASKS}')
  height, width, channels = input_pipeline.IMAGE_SHAPES[config.data.name]
  shape = dict(height=height, width=width, channels=channels)
  try:
    if config.task == 'classify':
      if config.data.name not in input_pipeline.LABELLED_DATASETS:
        raise ConfigError(f'task=classify needs labels, and data.name='
                          f'{config.data.name!r} has none; choose one of '
                          f'{input_pipeline.LABELLED_DATASETS}')
      return classifier.ClassifierConfig(
          num_classes=config.data.num_classes, **shape,
          **config.classifier.to_dict())
    return draw_model.DrawConfig(**shape, **config.model.to_dict())
  except (TypeError, ValueError) as error:
    if isinstance(error, ConfigError):
      raise
    raise ConfigError(str(error)) from None


def _binarization(config):
  method = config.data.binarization or input_pipeline.default_binarization(
      config.data.name)
  if method not in input_pipeline.BINARIZATION_METHODS:
    raise ConfigError(f'data.binarization={method!r} is unknown; choose one of '
                      f'{input_pipeline.BINARIZATION_METHODS}')
  if config.data.name == 'binarized_mnist' and method != 'none':
    raise ConfigError('data.binarization must be none for binarized_mnist: it is '
                      'already the fixed binarization the paper reports on')
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
                 'train.checkpoint_every_minutes', 'train.time_budget_minutes',
                 'eval.iw_samples', 'eval.iw_examples')
# Batches that are split over the devices.
_PER_DEVICE = ('train.batch_size', 'eval.batch_size', 'eval.iw_batch_size')


def _value(settings, path):
  group, field = path.split('.')
  return getattr(getattr(settings, group), field)


def _check(settings, device_count):
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
  if train.init_continue and not train.init_from:
    raise ConfigError('train.init_continue=True needs train.init_from')
  if settings.eval.split not in ('valid', 'test'):
    raise ConfigError(f"eval.split must be 'valid' or 'test', got "
                      f'{settings.eval.split!r}')
  for path in _PER_DEVICE:
    if _value(settings, path) % device_count:
      raise ConfigError(f'{path}={_value(settings, path)} does not divide '
                        f'evenly over {device_count} devices')
