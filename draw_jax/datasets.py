"""The data sets draw_jax knows, one spec each, and how a run gets its splits.

A data set is read from a folder (`data.dir`, else $DRAW_DATA_DIR) by its
reader in `dataset_files`, else fetched by tensorflow-datasets; the scene
data sets are built from MNIST's digits by `mnist_scenes`, one fixed seed
per split. Every split comes back as uint8 images [n, H, W, C].
"""
import dataclasses
import os
from typing import Callable, Optional

from draw_jax import dataset_files
from draw_jax import mnist_scenes

DataError = dataset_files.DataError
Splits = dataset_files.Splits
BINARIZATIONS = ('none', 'dynamic', 'static', 'intensity')
SPLITS = ('train', 'valid', 'test')


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What the rest of draw_jax knows of a data set."""
  shape: tuple  # (height, width, channels)
  # How training turns its uint8 pixels into model inputs by default: grey
  # digits are sampled to binary for the paper's Bernoulli setup; clutter and
  # colour stay intensities in [0, 1], as the paper's models take them.
  binarization: str
  # One class label per image, so task=classify can train on it.
  labelled: bool
  train_examples: int  # as published; a run may keep fewer (max_examples)
  # data folder -> Splits, or None for scenes built from MNIST.
  read_files: Optional[Callable] = None
  tfds: Optional[tuple] = None  # (builder, (train, valid, test) split strings)
  # (digits, labels, seed) -> (scenes, labels), from the MNIST split.
  build_scenes: Optional[Callable] = None
  # jnp (digits, labels, indices, key) -> (scenes, labels): a training
  # batch's scenes with a new layout, built on the device (data.fresh_scenes).
  fresh_scenes: Optional[Callable] = None


def _two_digit_scenes(digits, labels, seed):
  # The scene's label is its first digit's; the second digit is unlabelled,
  # so the data set is not `labelled`.
  return mnist_scenes.two_digit(digits, seed), labels


def _coloured_scenes(digits, labels, seed):
  return mnist_scenes.coloured(digits, seed), labels


_MNIST_SPLITS = ('train[:50000]', 'train[50000:]', 'test')
# SVHN and CIFAR-10 hold out their last 5,000 training images as validation.
_HELD_OUT_SPLITS = ('train[:-5000]', 'train[-5000:]', 'test')

DATASETS = {
    'binarized_mnist': Dataset(
        (28, 28, 1), 'none', labelled=False, train_examples=50_000,
        read_files=dataset_files.binarized_mnist,
        tfds=('binarized_mnist', ('train', 'validation', 'test'))),
    'mnist': Dataset(
        (28, 28, 1), 'dynamic', labelled=True, train_examples=50_000,
        read_files=dataset_files.mnist, tfds=('mnist', _MNIST_SPLITS)),
    'mnist_two_digit': Dataset(
        (60, 60, 1), 'dynamic', labelled=False, train_examples=50_000,
        build_scenes=_two_digit_scenes,
        fresh_scenes=mnist_scenes.fresh_two_digit),
    'cluttered_mnist': Dataset(
        (100, 100, 1), 'intensity', labelled=True, train_examples=50_000,
        build_scenes=mnist_scenes.cluttered,
        fresh_scenes=mnist_scenes.fresh_cluttered),
    'coloured_mnist': Dataset(
        (28, 28, 3), 'intensity', labelled=True, train_examples=50_000,
        build_scenes=_coloured_scenes),
    'svhn': Dataset(
        (32, 32, 3), 'intensity', labelled=True, train_examples=68_257,
        read_files=dataset_files.svhn, tfds=('svhn_cropped', _HELD_OUT_SPLITS)),
    'cifar10': Dataset(
        (32, 32, 3), 'intensity', labelled=True, train_examples=45_000,
        read_files=dataset_files.cifar10, tfds=('cifar10', _HELD_OUT_SPLITS)),
}


def spec(name):
  """The data set's spec; DataError naming the known ones if there is none."""
  if name not in DATASETS:
    raise DataError(f'unknown data set {name!r}; known data sets: '
                    f'{", ".join(DATASETS)}')
  return DATASETS[name]


def resolve_data_dir(data_dir):
  """The config value if non-empty, else $DRAW_DATA_DIR, else None (tfds)."""
  return data_dir or os.environ.get('DRAW_DATA_DIR') or None


def load_splits(name, data_dir, max_examples=0, only=SPLITS):
  """Data set `name` from data_dir (else $DRAW_DATA_DIR, else tfds).

  max_examples > 0 keeps the first max_examples of each split; the generated
  scenes are then built from only that many digits, which keeps small runs
  cheap. Splits not in `only` are None (scenes: not built at all).
  """
  dataset = spec(name)
  if dataset.build_scenes is None:
    splits = _read(name, data_dir).first(max_examples)
    return Splits(**{field: value if field.split('_')[0] in only else None
                     for field, value in splits._asdict().items()})
  digits = _read('mnist', data_dir).first(max_examples)
  scenes = {}
  for split, images, labels in zip(SPLITS, digits.images, digits.labels):
    if split in only:
      scenes[split], scenes[f'{split}_labels'] = dataset.build_scenes(
          images, labels, mnist_scenes.SPLIT_SEEDS[split])
  return Splits(**{split: scenes.get(split) for split in SPLITS},
                **{f'{split}_labels': scenes.get(f'{split}_labels')
                   for split in SPLITS})


def draws_fresh_scenes(data):
  """Whether training builds each batch's scenes afresh (data.fresh_scenes)."""
  return data.fresh_scenes and DATASETS[data.name].fresh_scenes is not None


def load_for_training(data):
  """The splits of a training run (data: settings.data).

  With fresh scenes, train holds the MNIST digits that each batch's scenes
  are built from (make_batch), and only valid and test are fixed scenes.
  """
  if not draws_fresh_scenes(data):
    return load_splits(data.name, data.dir, data.max_examples)
  digits = _read('mnist', data.dir).first(data.max_examples)
  build = DATASETS[data.name].build_scenes
  valid, valid_labels = build(digits.valid, digits.valid_labels,
                              mnist_scenes.SPLIT_SEEDS['valid'])
  test, test_labels = build(digits.test, digits.test_labels,
                            mnist_scenes.SPLIT_SEEDS['test'])
  return Splits(digits.train, valid, test, digits.train_labels, valid_labels,
                test_labels)


def make_batch(data):
  """(train arrays, indices, key) -> (uint8 images, labels or None); jnp.

  The arrays are load_for_training's train split: the batch is its rows, or
  fresh scenes of them.
  """
  build = DATASETS[data.name].fresh_scenes if draws_fresh_scenes(data) else None

  def batch(arrays, indices, key):
    if build is not None:
      return build(arrays['images'], arrays['labels'], indices, key)
    labels = arrays.get('labels')
    return arrays['images'][indices], None if labels is None else labels[indices]

  return batch


def _read(name, data_dir):
  """A file-backed data set's splits, from its folder or through tfds."""
  dataset = DATASETS[name]
  folder = resolve_data_dir(data_dir)
  if folder is not None:
    return dataset.read_files(os.path.abspath(os.path.expanduser(folder)))
  builder, split_names = dataset.tfds
  splits = dataset_files.from_tfds(builder, split_names, dataset.shape)
  if dataset.binarization == 'none':  # held to what its files must hold
    splits = Splits(*(dataset_files.as_binary_images(
        images, f'tensorflow-datasets {builder} split {split!r}')
                      for images, split in zip(splits.images, split_names)),
                    *splits.labels)
  return splits
