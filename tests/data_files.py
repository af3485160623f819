"""Tiny CIFAR-10 and SVHN files in their published formats, for tests.

Just over the 5,000 training images that become the validation split, so a
few remain to train on.
"""
import pickle

import numpy as np
import scipy.io


def cifar10_batch(seed, count):
  """A batch in the published layout: uint8 rows of 3072, channel first."""
  rng = np.random.default_rng(seed)
  data = np.zeros((count, 3072), np.uint8)
  # Zeros elsewhere keep the .tar.gz quick to compress.
  random_rows = min(count, 16)
  data[:random_rows] = rng.integers(0, 256, (random_rows, 3072))
  labels = [int(label) for label in rng.integers(0, 10, count)]
  return {b'batch_label': b'batch', b'labels': labels, b'data': data,
          b'filenames': [b'image.png'] * count}


def write_cifar10_batches(folder, train_counts=(1001,) * 5, test_count=7):
  """Writes cifar-10-batches-py/ under folder; returns the batches by name."""
  batch_folder = folder / 'cifar-10-batches-py'
  batch_folder.mkdir(parents=True)
  names = [f'data_batch_{number}' for number in range(1, 6)] + ['test_batch']
  batches = {}
  for seed, (name, count) in enumerate(zip(names, [*train_counts, test_count])):
    batches[name] = cifar10_batch(seed, count)
    # Protocol 2, as the original Python 2 files.
    (batch_folder / name).write_bytes(pickle.dumps(batches[name], protocol=2))
  return batches


def write_svhn_mat_files(folder, train_count=5003, test_count=4):
  """train/test_32x32.mat as published: X [32,32,3,n] uint8, y [n,1], 10 = 0."""
  folder.mkdir(parents=True, exist_ok=True)
  written = {}
  for seed, (name, count) in enumerate([('train_32x32.mat', train_count),
                                        ('test_32x32.mat', test_count)]):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (32, 32, 3, count), np.uint8)
    labels = rng.integers(1, 11, (count, 1)).astype(np.uint8)
    labels[0] = 10
    scipy.io.savemat(folder / name, {'X': pixels, 'y': labels})
    written[name] = (pixels, labels)
  return written
