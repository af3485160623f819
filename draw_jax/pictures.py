"""Generated samples, reconstructions and attention pictures, written to disk.

Used by the trainer at every evaluation and by --mode=sample.
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
                   generated.write_params)

  def _final_canvases(self, params, key, num_samples):
    return self._generate_all(params, key, num_samples).canvases[-1]

  def _reconstruct_all(self, params, images, key):
    binary = input_pipeline.binarize(images, self._binarization,
                                     jax.random.fold_in(key, 1))
    model = nnx.merge(self._graphdef, params)
    output = model(binary, key)
    return Drawing(model.canvas_images(output.canvas_logits_per_step),
                   output.write_params, output.read_params)

  def generate(self, params, key, num_samples):
    """All T canvases (as images) and write windows of num_samples samples."""
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


def write_samples(sampler, params, directory, key, sample_config, test_images,
                  writer=None, step=0):
  """Writes every output named in sample_config.outputs; returns their paths.

  Every process must call it (the generation is one SPMD computation over
  all devices); only the first process writes files.
  """
  outputs = sample_config.outputs
  computed = _compute(sampler, params, key, sample_config, test_images, outputs)
  if jax.process_index() != 0:
    return {}
  os.makedirs(directory, exist_ok=True)
  paths = _render(computed, directory, sampler.draw_config, sample_config,
                  outputs, writer, step)
  logging.info('wrote %s', ', '.join(sorted(paths.values())))
  return paths


def _compute(sampler, params, key, sample_config, test_images, outputs):
  """The model's part: generated and reconstructed canvases, as numpy."""
  animated = min(sample_config.num_samples, _ANIMATED_SAMPLES)
  computed = dict(generated=sampler.generate(params, key, animated))
  if 'grid' in outputs and sample_config.num_samples > animated:
    computed['finals'] = sampler.final_samples(params, key,
                                               sample_config.num_samples)
  if 'reconstruction' in outputs or 'filters' in outputs:
    images = input_pipeline.strided_subset(test_images, animated)
    computed['reconstructed'] = sampler.reconstruct(params, images, key)
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
  reconstructed = computed.get('reconstructed')
  if 'reconstruction' in outputs:
    paths['reconstruction'] = visualize.save_canvas_gif(
        os.path.join(directory, 'reconstruction.gif'),
        reconstructed.canvases,
        write_params=reconstructed.write_params,
        read_params=reconstructed.read_params, write_n=write_n, read_n=read_n,
        **gif_options)
  if 'filters' in outputs and config.attention:
    paths.update(_write_filter_images(directory, reconstructed, config))
  return paths


def _write_filter_images(directory, output, config):
  """The read and write filterbanks of the first image at the middle step."""
  middle = config.T // 2
  paths = {}
  for name, params, glimpse in (('read', output.read_params, config.read_n),
                                ('write', output.write_params, config.write_n)):
    one = jax.tree.map(lambda field: field[middle, 0], params)
    image = visualize.filterbank_image(one, config.height, config.width, glimpse)
    paths[f'{name}_filters'] = visualize.save_png(
        os.path.join(directory, f'{name}_filters.png'), image)
  return paths


def make_pictures(settings, graphdef, mesh):
  """(params, directory, test_images, writer, step) -> paths, for the model.

  DRAW writes samples, canvas GIFs and filterbanks; the classifier draws its
  glimpses over a few test images.
  """
  model_config, binarization = settings.model, settings.data.binarization
  if model_config.model_class.PICTURES == 'glimpses':
    return GlimpsePictures(graphdef, model_config, mesh, binarization)
  sampler = Sampler(graphdef, model_config, mesh, binarization)
  key = jax.random.key(settings.sample.seed)

  def write(params, directory, test_images, writer=None, step=0):
    return write_samples(sampler, params, directory, key, settings.sample,
                         test_images, writer, step)

  return write


class GlimpsePictures:
  """The classifier's T glimpse boxes drawn over a few test images."""

  def __init__(self, graphdef, model_config, mesh, binarization):
    self._config = model_config
    self._binarization = binarization
    self._glimpses = jax.jit(
        lambda params, images: nnx.merge(graphdef, params)(
            input_pipeline.binarize(images, binarization)).glimpse_params,
        out_shardings=sharding.replicated(mesh))

  def __call__(self, params, directory, test_images, writer=None, step=0):
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


def sample(run, settings, workdir):
  """--mode=sample on a loaded run: writes its pictures."""
  pictures = make_pictures(settings, run.graphdef, run.mesh)
  directory = os.path.join(workdir, 'samples', f'step_{run.step}')
  return pictures(run.params, directory, run.splits.test)
