"""From the data sets' files to the batches a step sees.

The splits are read (`datasets`) or built from MNIST (`mnist_scenes`), kept
on the devices as uint8, and each jitted step gathers its batch from the
epoch's shuffle and binarizes it there, so nothing is copied from the host
per step. Evaluation pads a split to whole batches and can take an evenly
strided subset of it.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from draw_jax import datasets
from draw_jax import mnist_scenes
from draw_jax import sharding

DataError = datasets.DataError
Splits = datasets.Splits


def _two_digit_split(digits, labels, seed):
  # The scene's label is its first digit's; the second digit is unlabelled.
  return mnist_scenes.two_digit(digits, seed), labels


def _coloured_split(digits, labels, seed):
  return mnist_scenes.coloured(digits, seed), labels


# Scenes built from the MNIST split of the same name, one seed per split:
# (digits, labels, seed) -> (scenes, labels).
_SCENE_GENERATORS = {
    'mnist_two_digit': _two_digit_split,
    'cluttered_mnist': mnist_scenes.cluttered,
    'coloured_mnist': _coloured_split,
}
# (height, width, channels) of each data set's images.
IMAGE_SHAPES = {
    'binarized_mnist': datasets.IMAGE_SHAPES['binarized_mnist'],
    'mnist': datasets.IMAGE_SHAPES['mnist'],
    'mnist_two_digit': (60, 60, 1),
    'cluttered_mnist': (100, 100, 1),
    'coloured_mnist': (28, 28, 3),
    'svhn': datasets.IMAGE_SHAPES['svhn'],
    'cifar10': datasets.IMAGE_SHAPES['cifar10'],
}
KNOWN_DATASETS = tuple(IMAGE_SHAPES)
# Data sets whose images carry one class label each: a two-digit scene has
# two digits, so its first digit's label would make a badly posed task.
LABELLED_DATASETS = tuple(name for name in KNOWN_DATASETS
                          if name not in ('binarized_mnist', 'mnist_two_digit'))
BINARIZATION_METHODS = ('none', 'dynamic', 'static', 'intensity')
# Grey digits are mostly near 0 or 255, so sampling them to binary keeps the
# paper's Bernoulli setup for the generative MNIST experiments; clutter and
# colour stay intensities in [0, 1], as the paper's colour models and the
# cluttered-MNIST classifier take them.
_DEFAULT_BINARIZATION = {
    'binarized_mnist': 'none',
    'mnist': 'dynamic',
    'mnist_two_digit': 'dynamic',
    'cluttered_mnist': 'intensity',
    'coloured_mnist': 'intensity',
    'svhn': 'intensity',
    'cifar10': 'intensity',
}


def default_binarization(name):
  """'none' for binary data, 'dynamic' for grey digits, else 'intensity'."""
  _check_dataset_name(name)
  return _DEFAULT_BINARIZATION[name]


def _check_dataset_name(name):
  if name not in KNOWN_DATASETS:
    raise DataError(f'unknown data set {name!r}; known data sets: '
                    f'{", ".join(KNOWN_DATASETS)}')


def load_splits(name, data_dir, max_examples=0):
  """Data set `name` from data_dir (else $DRAW_DATA_DIR, else tfds).

  max_examples > 0 keeps the first max_examples of each split; the generated
  scenes are then built from only that many digits, which keeps small runs
  cheap.
  """
  _check_dataset_name(name)
  generate = _SCENE_GENERATORS.get(name)
  source = datasets.load('mnist' if generate else name, data_dir)
  source = source.first(max_examples)
  if generate is None:
    return source
  scenes = {}
  for split, digits, labels in zip(('train', 'valid', 'test'), source.images,
                                   source.labels):
    images, labels = generate(digits, labels, mnist_scenes.SPLIT_SEEDS[split])
    scenes[split], scenes[f'{split}_labels'] = images, labels
  return Splits(**scenes)


def binarize(images, method, key=None):
  """Turns a uint8 batch into float32 pixels in {0, 1}; call it inside jit.

  'none': the data is already 0/1, just cast. 'dynamic': a fresh Bernoulli
  sample with p = intensity on every call (needs `key`). 'static': threshold
  at intensity > 0.5, i.e. uint8 value >= 128. 'intensity': not binary but
  the intensity x / 255 in [0, 1] itself, which the Bernoulli likelihood then
  treats as a probability (the paper's choice for colour images).
  """
  if method == 'none':
    return images.astype(jnp.float32)
  if method == 'static':
    return (images >= 128).astype(jnp.float32)
  if method == 'intensity':
    return images.astype(jnp.float32) / 255.0
  if method == 'dynamic':
    if key is None:
      raise ValueError("binarize(method='dynamic') needs a PRNG key")
    intensities = images.astype(jnp.float32) / 255.0
    return jax.random.bernoulli(key, intensities).astype(jnp.float32)
  raise ValueError(
      f'unknown binarization {method!r}; choose one of {BINARIZATION_METHODS}')


# ---- training: the epoch's order and the step's batch ---------------------


def steps_per_epoch(num_examples, batch_size):
  return num_examples // batch_size  # the last partial batch is dropped


def make_epoch_order(data_key, num_examples, mesh):
  """epoch -> that epoch's shuffle of the example indices, made on the device.

  Made once per epoch rather than in every step: a 50,000-element shuffle
  costs a step about as much as a small model's whole update.
  """
  shuffle = jax.jit(  # the key as an argument: one program for every seed
      lambda key, epoch: jax.random.permutation(jax.random.fold_in(key, epoch),
                                                num_examples),
      out_shardings=sharding.replicated(mesh))
  return functools.partial(shuffle, data_key)


def batch_indices(step, epoch_order, batch_size):
  """The step's example indices: its slice of its epoch's shuffle."""
  position = step % steps_per_epoch(epoch_order.shape[0], batch_size)
  return jax.lax.dynamic_slice_in_dim(epoch_order, position * batch_size,
                                      batch_size)


def on_devices(images, labels, mesh, multiple=1):
  """{'images', 'labels'?} replicated on the devices, padded to a multiple."""
  data = dict(images=images)
  if labels is not None:
    data['labels'] = labels
  return jax.device_put({name: pad_to_multiple(values, multiple)[0]
                         for name, values in data.items()},
                        sharding.replicated(mesh))


# ---- evaluation: whole batches and strided subsets ------------------------


def pad_to_multiple(images, multiple):
  """Pads with zero images to a whole number of batches; returns (images, n)."""
  count = images.shape[0]
  padding = -count % multiple
  if not padding:
    return images, count
  padded = np.concatenate(
      [images, np.zeros((padding,) + images.shape[1:], images.dtype)])
  return padded, count


def strided_subset(images, count):
  """count examples spread evenly over the split (test is sorted by label)."""
  if not count or count >= images.shape[0]:
    return images
  return images[np.linspace(0, images.shape[0] - 1, count).astype(int)]
