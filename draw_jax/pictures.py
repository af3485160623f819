"""What each model draws, written to disk at every evaluation and by --mode=sample.

DRAW: samples from the prior (a grid, the canvas's evolution and a GIF of
it with the write window, the read and write filterbanks) and, where test
images are at hand, their reconstructions. The glimpse classifier: its
glimpses over a few test images. A model config names its pictures
(interface.ModelConfig.make_pictures).
"""
import os
from typing import Optional

import jax
import numpy as np
from absl import logging
from flax import nnx
from flax import struct
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from draw_jax import attention
from draw_jax import datasets
from draw_jax import input_pipeline
from draw_jax import sharding
from draw_jax import visualize

# Beyond this many, samples are made in chunks and only final canvases kept:
# all T canvases of 10,000 MNIST samples at T = 64 would take 2 GB.
_GENERATION_CHUNK = 1000
# Samples in the GIFs and evolution grid: 16 keep a T = 64 GIF near 2 MB.
_ANIMATED_SAMPLES = 16
# Test images whose glimpses a classifier run draws.
_GLIMPSE_EXAMPLES = 8


@struct.dataclass
class Drawing:
  """What the pictures show of T steps: the canvases and attention windows."""
  canvases: jax.Array  # [T, n, H, W, C], images in [0, 1]
  write_params: Optional[attention.AttentionParams]  # fields [T, n]
  read_params: Optional[attention.AttentionParams] = None


class Sampler:
  """Jitted generation and reconstruction for one model shape."""

  def __init__(self, graphdef, draw_config, mesh, binarization):
    self._graphdef = graphdef
    self.draw_config = draw_config
    self._mesh = mesh
    self._binarization = binarization
    replicated = sharding.replicated(mesh)
    self._generate = jax.jit(self._generate_all, static_argnums=2,
                             out_shardings=replicated)
    self._final = jax.jit(self._final_canvases, static_argnums=2,
                          out_shardings=replicated)
    self._reconstruct = jax.jit(self._reconstruct_all, out_shardings=replicated)

  def _generate_all(self, params, key, num_samples):
    config = self.draw_config
    noise_TxBxZ = jax.random.normal(key, (config.T, num_samples, config.z_size))
    if num_samples % jax.device_count() == 0:
      # Each device draws its share of the samples; the decoder's scan
      # inherits the sharding from its inputs.
      noise_TxBxZ = jax.lax.with_sharding_constraint(
          noise_TxBxZ, NamedSharding(self._mesh, P(None, sharding.DATA_AXIS)))
    model = nnx.merge(self._graphdef, params)
    generated = model.generate_from_noise(noise_TxBxZ)
    return Drawing(model.canvas_images(generated.canvas_logits_per_step),
                   generated.write_params, generated.read_params)

  def _final_canvases(self, params, key, num_samples):
    return self._generate_all(params, key, num_samples).canvases[-1]

  def _reconstruct_all(self, params, images, key):
    binary = input_pipeline.binarize(images, self._binarization, key)
    model = nnx.merge(self._graphdef, params)
    output = model(binary, key)
    return Drawing(model.canvas_images(output.canvas_logits_per_step),
                   output.write_params, output.read_params)

  def generate(self, params, key, num_samples):
    """All T canvases (as images) and windows of num_samples samples."""
    return sharding.to_host(self._generate(params, key, num_samples))

  def final_samples(self, params, key, num_samples):
    """Final canvas probabilities [n, H, W, C], made in sharded chunks."""
    chunks = []
    for index, start in enumerate(range(0, num_samples, _GENERATION_CHUNK)):
      size = min(_GENERATION_CHUNK, num_samples - start)
      chunks.append(sharding.to_host(
          self._final(params, jax.random.fold_in(key, index), size)))
    return np.concatenate(chunks)

  def reconstruct(self, params, images_uint8, key):
    """The training pass over the images, its canvases as images."""
    return sharding.to_host(self._reconstruct(params, images_uint8, key))


class DrawPictures:
  """DRAW's pictures: interface.Pictures."""

  def __init__(self, graphdef, draw_config, mesh, binarization,
               sample_settings):
    self._sampler = Sampler(graphdef, draw_config, mesh, binarization)
    self._settings = sample_settings
    self._key = jax.random.key(sample_settings.seed)

  def __call__(self, params, directory, test_images, writer=None, step=0):
    """Writes every output in sample.outputs; returns their paths.

    Every process must call it (the generation is one SPMD computation over
    all devices); only the first process writes files.
    """
    outputs = self._settings.outputs
    if test_images is None and 'reconstruction' in outputs:
      logging.info('no test images at hand: wrote the samples from the prior, '
                   'skipped the reconstructions')
      outputs = tuple(name for name in outputs if name != 'reconstruction')
    computed = self._compute(params, test_images, outputs)
    if jax.process_index() != 0:
      return {}
    os.makedirs(directory, exist_ok=True)
    paths = _render(computed, directory, self._sampler.draw_config,
                    self._settings, outputs, writer, step)
    logging.info('wrote %s', ', '.join(sorted(paths.values())))
    return paths

  def _compute(self, params, test_images, outputs):
    """The model's part: generated and reconstructed canvases, as numpy."""
    count = self._settings.num_samples
    animated = min(count, _ANIMATED_SAMPLES)
    computed = dict(generated=self._sampler.generate(params, self._key,
                                                     animated))
    if 'grid' in outputs and count > animated:
      computed['finals'] = self._sampler.final_samples(params, self._key, count)
    if 'reconstruction' in outputs:
      images = input_pipeline.strided_subset(test_images, animated)
      computed['reconstructed'] = self._sampler.reconstruct(params, images,
                                                            self._key)
    return computed


def _render(computed, directory, config, sample_config, outputs, writer, step):
  """The pictures' part: numpy and imageio only."""
  write_n = config.write_n if config.attention else None
  read_n = config.read_n if config.attention else None
  gif_options = dict(upscale=sample_config.upscale,
                     frame_duration=sample_config.gif_frame_seconds,
                     hold_frames=sample_config.gif_hold_frames)
  generated = computed['generated']
  canvases = generated.canvases
  paths = {}
  pictures = {}
  if 'grid' in outputs:
    pictures['samples'] = visualize.sample_grid(computed.get('finals', canvases[-1]))
  if 'evolution' in outputs:
    pictures['evolution'] = visualize.evolution_grid(canvases)
  for name, picture in pictures.items():
    paths['grid' if name == 'samples' else name] = visualize.save_png(
        os.path.join(directory, f'{name}.png'), picture)
    if writer:
      writer.image(step, name, picture)
  if 'gif' in outputs:
    paths['gif'] = visualize.save_canvas_gif(
        os.path.join(directory, 'samples.gif'), canvases,
        write_params=generated.write_params, write_n=write_n, **gif_options)
  if 'reconstruction' in outputs:
    reconstructed = computed['reconstructed']
    paths['reconstruction'] = visualize.save_canvas_gif(
        os.path.join(directory, 'reconstruction.gif'),
        reconstructed.canvases,
        write_params=reconstructed.write_params,
        read_params=reconstructed.read_params, write_n=write_n, read_n=read_n,
        **gif_options)
  if 'filters' in outputs and config.attention:
    paths.update(_write_filter_images(directory, generated, config))
  return paths


def _write_filter_images(directory, drawing, config):
  """The read and write filterbanks of the first sample at the middle step."""
  middle = config.T // 2
  paths = {}
  for name, params, glimpse in (('read', drawing.read_params, config.read_n),
                                ('write', drawing.write_params, config.write_n)):
    one = jax.tree.map(lambda field: field[middle, 0], params)
    image = visualize.filterbank_image(one, config.height, config.width, glimpse)
    paths[f'{name}_filters'] = visualize.save_png(
        os.path.join(directory, f'{name}_filters.png'), image)
  return paths


class GlimpsePictures:
  """The classifier's T glimpse boxes drawn over a few test images."""

  def __init__(self, graphdef, model_config, mesh, binarization, seed):
    self._config = model_config
    key = jax.random.key(seed)  # for data sets binarized by sampling
    self._glimpses = jax.jit(
        lambda params, images: nnx.merge(graphdef, params)(
            input_pipeline.binarize(images, binarization, key)).glimpse_params,
        out_shardings=sharding.replicated(mesh))

  def __call__(self, params, directory, test_images, writer=None, step=0):
    if test_images is None:
      logging.info('no test images at hand: no glimpses to draw')
      return {}
    images = input_pipeline.strided_subset(test_images, _GLIMPSE_EXAMPLES)
    glimpse_params = sharding.to_host(self._glimpses(params, images))
    if jax.process_index() != 0:
      return {}
    picture = visualize.glimpse_boxes_image(
        images.astype(np.float32) / 255.0, glimpse_params, self._config.glimpse)
    os.makedirs(directory, exist_ok=True)
    path = visualize.save_png(os.path.join(directory, 'glimpses.png'), picture)
    if writer:
      writer.image(step, 'glimpses', picture)
    logging.info('wrote %s', path)
    return dict(glimpses=path)


def test_images_if_any(data):
  """The test split's images, or None with a line saying why there are none."""
  try:
    return datasets.load_splits(data.name, data.dir, data.max_examples,
                                only=('test',)).test
  except datasets.DataError as error:
    logging.warning('no test images (%s)', error)
    return None


def sample(run, settings, workdir):
  """--mode=sample on a loaded run: writes its pictures."""
  pictures = settings.model.make_pictures(run.graphdef, run.mesh,
                                          settings.data.binarization,
                                          settings.sample)
  directory = os.path.join(workdir, 'samples', f'step_{run.step}')
  return pictures(run.params, directory, test_images_if_any(settings.data))
