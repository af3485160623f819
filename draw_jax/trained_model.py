"""A trained or shipped model as a Python object: `draw_jax.load(directory)`.

  import draw_jax
  model = draw_jax.load('pretrained/mnist_attn')     # or any training workdir
  canvases = model.sample(16, seed=0)                 # [T, 16, H, W, C] in [0, 1]
  canvases = model.reconstruct(images)                # [T, n, H, W, C]
  nats = model.neg_elbo(images)                       # mean over the images
  classifier = draw_jax.load(workdir_of_a_classify_run)
  labels = classifier.predict(images)                 # [n]

Images are arrays [n, H, W, C] (or [n, H, W]): uint8 pixels as the data set
holds them, which get the run's binarization as --mode=eval gives them, or
floats in [0, 1], read as they are. The work is done by the same code as
--mode=sample and --mode=eval: the pictures' Sampler and the Evaluator.
"""
import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx

from draw_jax import checkpoints
from draw_jax import defaults
from draw_jax import evaluate
from draw_jax import input_pipeline
from draw_jax import pictures
from draw_jax import pretrained
from draw_jax import settings as settings_lib

# The shape fields of a saved model config that come from the data, not
# from the config's model group.
_DATA_FIELDS = ('height', 'width', 'channels', 'num_classes')


def _settings(directory):
  """Settings that rebuild the saved model, with the run's data settings."""
  saved = checkpoints.saved_model_config(directory)
  recorded = _recorded(directory)
  config = defaults.get_config()
  config.task = recorded.get('task', 'generate')  # older runs: DRAW only
  config.data.name = recorded['data']['name']
  config.data.binarization = recorded['data'].get('binarization', '')
  group = settings_lib.parse(config).model.CONFIG_GROUP
  config[group].update({name: value for name, value in saved.items()
                        if name not in _DATA_FIELDS})
  if 'num_classes' in saved:
    config.data.num_classes = saved['num_classes']
  return settings_lib.parse(config)


def _recorded(directory):
  """What the run recorded of its config: its config.json (a training
  workdir) or the shipped model's pretrained.json."""
  run_config = os.path.join(directory, 'config.json')
  if os.path.isfile(run_config):
    with open(run_config) as f:
      return json.load(f)
  if os.path.isfile(os.path.join(directory, pretrained.METADATA_FILE)):
    metadata = pretrained.read_metadata(directory)
    return dict(metadata, data=dict(name=metadata['data']))
  raise FileNotFoundError(f'{directory} has neither config.json (a training '
                          f'workdir) nor {pretrained.METADATA_FILE} (a shipped '
                          'model)')


def _as_images(images, shape):
  """[n, H, W, C] uint8 pixels, or float32 in [0, 1], from what is handed in."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = images.astype(np.float32)
  if images.ndim == len(shape) and shape[-1] == 1:
    images = images[..., None]
  if images.shape[1:] != tuple(shape):
    raise ValueError(f'images of shape {images.shape}; the model takes '
                     f'[n, {", ".join(map(str, shape))}]')
  return images


class _TrainedModel:
  """What every loaded model has: its config, step, parameters and module."""

  def __init__(self, run, settings):
    self.config = run.model_config
    self.step = run.step
    self.params = run.params
    self._run = run
    self._settings = settings

  @property
  def module(self):
    """The Flax NNX module with these parameters, to call or inspect."""
    return nnx.merge(self._run.graphdef, self.params)

  def _images(self, images):
    return _as_images(images, (self.config.height, self.config.width,
                               self.config.channels))


class DrawModel(_TrainedModel):
  """A trained DRAW: samples, reconstructions and its -ELBO."""

  def __init__(self, run, settings):
    super().__init__(run, settings)
    self._tools = {}  # binarization -> (Sampler, Evaluator), made once

  def _prepared(self, images):
    """(images, Sampler, Evaluator): uint8 pixels get the run's binarization,
    floats in [0, 1] none."""
    images = self._images(images)
    binarization = ('none' if images.dtype != np.uint8 else
                    self._settings.data.binarization)
    if binarization not in self._tools:
      settings = dataclasses.replace(self._settings, data=dataclasses.replace(
          self._settings.data, binarization=binarization))
      run = self._run
      self._tools[binarization] = (
          pictures.Sampler(run.graphdef, self.config, run.mesh, binarization),
          evaluate.Evaluator(settings, run.graphdef, run.mesh))
    return (images, *self._tools[binarization])

  def sample(self, num_samples, seed=0):
    """All T canvases of samples from the prior: [T, n, H, W, C] in [0, 1]."""
    return self.sample_drawing(num_samples, seed).canvases

  def sample_drawing(self, num_samples, seed=0):
    """sample()'s canvases with the write (and read) windows of each step:
    a pictures.Drawing, whose fields visualize.save_canvas_gif takes."""
    _, sampler, _ = self._prepared(np.zeros((0, *self.config.image_shape)))
    return sampler.generate(self.params, jax.random.key(seed), num_samples)

  def final_samples(self, num_samples, seed=0):
    """The last canvas only, [n, H, W, C], in chunks: for many samples."""
    _, sampler, _ = self._prepared(np.zeros((0, *self.config.image_shape)))
    return sampler.final_samples(self.params, jax.random.key(seed),
                                 num_samples)

  def reconstruct(self, images, seed=0):
    """The canvases the training pass draws of images: [T, n, H, W, C]."""
    return self.reconstruction_drawing(images, seed).canvases

  def reconstruction_drawing(self, images, seed=0):
    """reconstruct()'s canvases with the read and write windows of each step."""
    images, sampler, _ = self._prepared(images)
    return sampler.reconstruct(self.params, images, jax.random.key(seed))

  def neg_elbo(self, images):
    """The -ELBO in nats per image, averaged over images, as --mode=eval."""
    images, _, evaluator = self._prepared(images)
    return evaluator.split_means(self.params, images)['neg_elbo']

  def importance_weighted_nll(self, images, num_samples=100):
    """-log p(x) estimated with K = num_samples, nats per image (Burda et al.)."""
    images, _, evaluator = self._prepared(images)
    return evaluator.importance_weighted_nll(self.params, images,
                                             num_samples)[0]


class GlimpseClassifierModel(_TrainedModel):
  """A trained glimpse classifier: the class of each image."""

  def __init__(self, run, settings):
    super().__init__(run, settings)
    graphdef = run.graphdef
    key = jax.random.key(0)  # for data sets binarized by sampling
    self._logits = jax.jit(
        lambda params, images, binarization: nnx.merge(graphdef, params)(
            input_pipeline.binarize(images, binarization, key)).logits,
        static_argnums=2)

  def predict(self, images):
    """The most likely class of each image, int [n]."""
    images = self._images(images)
    binarization = ('none' if images.dtype != np.uint8 else
                    self._settings.data.binarization)
    return np.asarray(jax.numpy.argmax(
        self._logits(self.params, images, binarization), axis=-1))


# The Python object of each task's model.
_LOADED = dict(generate=DrawModel, classify=GlimpseClassifierModel)


def load(directory, step=-1):
  """The model in a workdir or pretrained/ folder, at step (-1: the latest).

  A DrawModel for a generative run, a GlimpseClassifierModel for
  task=classify.
  """
  settings = _settings(directory)
  run = checkpoints.load_trained(settings.model, directory, step)
  return _LOADED[settings.task](run, settings)
