"""From the splits to the batches a step sees.

The splits (`datasets.load_splits`) are kept on the devices as uint8, and
each jitted step gathers its batch from the epoch's shuffle and binarizes it
there, so nothing is copied from the host per step. Evaluation pads a split
to whole batches and can take an evenly strided subset of it.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from draw_jax import datasets
from draw_jax import sharding


def binarize(images, method, key=None):
  """Turns a uint8 batch into float32 pixels in {0, 1}; call it inside jit.

  'none': the data is already 0/1, just cast. 'dynamic': a fresh Bernoulli
  sample with p = intensity, drawn from fold_in(key, 1) so that the batch's
  key itself stays the model's noise. 'static': threshold at intensity > 0.5,
  i.e. uint8 value >= 128. 'intensity': not binary but the intensity x / 255
  in [0, 1] itself, which the Bernoulli likelihood then treats as a
  probability (the paper's choice for colour images).
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
    return jax.random.bernoulli(jax.random.fold_in(key, 1),
                                intensities).astype(jnp.float32)
  raise ValueError(
      f'unknown binarization {method!r}; choose one of {datasets.BINARIZATIONS}')


# ---- training: the epoch's order and the step's batch ---------------------


def steps_per_epoch(num_examples, batch_size):
  return num_examples // batch_size  # the last partial batch is dropped


def num_steps(train, num_examples):
  """Where a run ends: train.num_epochs whole epochs if set, else num_steps."""
  if train.num_epochs > 0:
    return train.num_epochs * steps_per_epoch(num_examples, train.batch_size)
  return train.num_steps


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
