"""Loads the data sets as uint8 images (+ labels) and binarizes batches in jit.

binarized_mnist and mnist are read from their files; mnist_two_digit,
cluttered_mnist and coloured_mnist are generated from the MNIST splits by
`mnist_scenes` (fixed seeds, see there); svhn and cifar10 are read by
`colour_datasets`. Data comes from a local folder (the `data_dir` argument,
else $DRAW_DATA_DIR), else from tensorflow-datasets. Every problem with the
files raises `DataError` with one line that names the file and says what is
wrong.
"""
import gzip
import math
import os
import zipfile
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from draw_jax import mnist_scenes

# (height, width, channels) of each data set's images.
IMAGE_SHAPES = {
    'binarized_mnist': (28, 28, 1),
    'mnist': (28, 28, 1),
    'mnist_two_digit': (60, 60, 1),
    'cluttered_mnist': (100, 100, 1),
    'coloured_mnist': (28, 28, 3),
    'svhn': (32, 32, 3),
    'cifar10': (32, 32, 3),
}
KNOWN_DATASETS = tuple(IMAGE_SHAPES)
# Data sets whose images carry one class label each: a two-digit scene has
# two digits, so its first digit's label would make a badly posed task.
LABELLED_DATASETS = tuple(name for name in KNOWN_DATASETS
                          if name not in ('binarized_mnist', 'mnist_two_digit'))
BINARIZATION_METHODS = ('none', 'dynamic', 'static', 'intensity')
# Grey digits are mostly near 0 or 255, so sampling them to binary keeps the
# paper's Bernoulli setup for the generative MNIST experiments; clutter and
# colour are kept as intensities in [0, 1], which the paper's colour models and
# the cluttered-MNIST classifier consume.
_DEFAULT_BINARIZATION = {
    'binarized_mnist': 'none',
    'mnist': 'dynamic',
    'mnist_two_digit': 'dynamic',
    'cluttered_mnist': 'intensity',
    'coloured_mnist': 'intensity',
    'svhn': 'intensity',
    'cifar10': 'intensity',
}

_IMAGE_SIZE = 28
_PIXELS = _IMAGE_SIZE * _IMAGE_SIZE
_SPLIT_NAMES = ('train', 'valid', 'test')

_BINARIZED_MNIST_URL = (
    'http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/')
_BINARIZED_MNIST_HELP = (
    'put binarized_mnist.npz (uint8 arrays train/valid/test, shape [n,28,28], '
    'values 0/1) in {folder}, or the Larochelle files '
    'binarized_mnist_{{train,valid,test}}.amat from ' + _BINARIZED_MNIST_URL)

_MNIST_TRAIN_IMAGES = 'train-images-idx3-ubyte.gz'
_MNIST_TRAIN_LABELS = 'train-labels-idx1-ubyte.gz'
_MNIST_TEST_IMAGES = 't10k-images-idx3-ubyte.gz'
_MNIST_TEST_LABELS = 't10k-labels-idx1-ubyte.gz'
_MNIST_HELP = (
    f'download the four IDX files {_MNIST_TRAIN_IMAGES}, '
    f'{_MNIST_TRAIN_LABELS}, {_MNIST_TEST_IMAGES}, {_MNIST_TEST_LABELS} from '
    'http://yann.lecun.com/exdb/mnist/ or the mirror '
    'https://storage.googleapis.com/cvdf-datasets/mnist/')
_IDX_IMAGES_MAGIC = 0x00000803  # uint8 data, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # uint8 data, 1 dimension
# The DRAW paper (like most MNIST VAE work) holds out the last 10,000 training
# images as the validation set.
_MNIST_TRAIN_SIZE = 50000
_MNIST_TRAIN_FILE_SIZE = 60000

_MNIST_TFDS_SPLITS = ('mnist', ('train[:50000]', 'train[50000:]', 'test'))
# Data set -> (tfds name, its train/valid/test split strings); the generated
# scenes start from the MNIST splits.
_TFDS_SOURCES = {
    'binarized_mnist': ('binarized_mnist', ('train', 'validation', 'test')),
    'mnist': _MNIST_TFDS_SPLITS,
    'mnist_two_digit': _MNIST_TFDS_SPLITS,
    'cluttered_mnist': _MNIST_TFDS_SPLITS,
    'coloured_mnist': _MNIST_TFDS_SPLITS,
    'svhn': ('svhn_cropped', ('train[:-5000]', 'train[-5000:]', 'test')),
    'cifar10': ('cifar10', ('train[:-5000]', 'train[-5000:]', 'test')),
}

# Byte -> meaning in a .amat file: 0 and 1 are pixels, 2 is whitespace and 3
# is anything else, so one table lookup classifies every byte at numpy speed.
_AMAT_PIXEL_0, _AMAT_PIXEL_1, _AMAT_SPACE, _AMAT_INVALID = 0, 1, 2, 3
_AMAT_BYTE_CLASS = np.full(256, _AMAT_INVALID, np.uint8)
_AMAT_BYTE_CLASS[ord('0')] = _AMAT_PIXEL_0
_AMAT_BYTE_CLASS[ord('1')] = _AMAT_PIXEL_1
_AMAT_BYTE_CLASS[list(b' \t\r\n')] = _AMAT_SPACE


class DataError(ValueError):
  """A data file is missing or malformed; the message names the file."""


class Splits(NamedTuple):
  """uint8 images [n, H, W, C] per split; int32 labels [n] where there are any."""
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  train_labels: np.ndarray | None = None
  valid_labels: np.ndarray | None = None
  test_labels: np.ndarray | None = None

  @property
  def images(self):
    """(train, valid, test): iterating a Splits also yields the labels."""
    return self.train, self.valid, self.test

  @property
  def labels(self):
    """(train_labels, valid_labels, test_labels), each None if unlabelled."""
    return self.train_labels, self.valid_labels, self.test_labels

  def first(self, count):
    """The first `count` examples of every split (all of them if count <= 0)."""
    if count <= 0:
      return self
    return Splits(*(None if array is None else array[:count] for array in self))


def resolve_data_dir(data_dir):
  """The config value if non-empty, else $DRAW_DATA_DIR, else None (tfds)."""
  return data_dir or os.environ.get('DRAW_DATA_DIR') or None


def default_binarization(name):
  """'none' for binary data, 'dynamic' for grey digits, else 'intensity'."""
  _check_dataset_name(name)
  return _DEFAULT_BINARIZATION[name]


def load_splits(name, data_dir, max_examples=0):
  """Loads data set `name` from `data_dir` (resolved as above) or from tfds.

  max_examples > 0 keeps the first max_examples of each split; the generated
  scenes are then built from only that many digits, which keeps small runs
  cheap.
  """
  _check_dataset_name(name)
  data_dir = resolve_data_dir(data_dir)
  if data_dir is None:
    source = _load_from_tfds(name)
  else:
    source = _load_local(name, os.path.abspath(os.path.expanduser(data_dir)))
  source = source.first(max_examples)
  if name in _SCENE_GENERATORS:
    return _generate_scenes(name, source)
  return source


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


def _load_local(name, data_dir):
  """The named set, or for generated scenes the MNIST splits they start from."""
  if name == 'binarized_mnist':
    return _load_binarized_mnist(data_dir)
  if name in ('svhn', 'cifar10'):
    # Imported here because colour_datasets builds on this module.
    from draw_jax import colour_datasets  # pylint: disable=g-import-not-at-top
    if name == 'svhn':
      return colour_datasets.load_svhn(data_dir)
    return colour_datasets.load_cifar10(data_dir)
  return _load_mnist(data_dir)


def _two_digit_split(digits, labels, seed):
  # The scene's label is its first digit's; the second digit is unlabelled.
  return mnist_scenes.two_digit(digits, seed), labels


def _coloured_split(digits, labels, seed):
  return mnist_scenes.coloured(digits, seed), labels


# (digits, labels, seed) -> (scenes, labels) for each generated data set.
_SCENE_GENERATORS = {
    'mnist_two_digit': _two_digit_split,
    'cluttered_mnist': mnist_scenes.cluttered,
    'coloured_mnist': _coloured_split,
}


def _generate_scenes(name, mnist):
  """Builds each split from the MNIST split of the same name, seed per split."""
  generate = _SCENE_GENERATORS[name]
  scenes = {}
  for split, digits, labels in zip(_SPLIT_NAMES, mnist.images, mnist.labels):
    images, labels = generate(digits, labels, mnist_scenes.SPLIT_SEEDS[split])
    scenes[split], scenes[f'{split}_labels'] = images, labels
  return Splits(**scenes)


def _check_dataset_name(name):
  if name not in KNOWN_DATASETS:
    known = ', '.join(KNOWN_DATASETS)
    raise DataError(f'unknown data set {name!r}; known data sets: {known}')


def candidate_folders(data_dir, name):
  """Files may sit in a subfolder named after the data set or at the top."""
  return (os.path.join(data_dir, name), data_dir)


def folder_note(data_dir):
  if os.path.isdir(data_dir):
    return ''
  return f' (the data folder {data_dir} does not exist)'


# --- binarized MNIST -------------------------------------------------------


def _load_binarized_mnist(data_dir):
  folders = candidate_folders(data_dir, 'binarized_mnist')
  for folder in folders:
    npz_path = os.path.join(folder, 'binarized_mnist.npz')
    if os.path.isfile(npz_path):
      return _load_binarized_npz(npz_path)
  for folder in folders:
    amat_paths = [os.path.join(folder, f'binarized_mnist_{split}.amat')
                  for split in _SPLIT_NAMES]
    present = [path for path in amat_paths if os.path.isfile(path)]
    if len(present) == len(amat_paths):
      return Splits(*(_parse_amat(path) for path in amat_paths))
    if present:
      missing = next(path for path in amat_paths if path not in present)
      raise DataError(
          f'{missing}: not found, although {present[0]} is there; download '
          f'binarized_mnist_{{train,valid,test}}.amat from '
          f'{_BINARIZED_MNIST_URL}')
  expected = os.path.join(folders[0], 'binarized_mnist.npz')
  raise DataError(
      f'{expected}: not found{folder_note(data_dir)}; also looked for '
      f'{os.path.join(data_dir, "binarized_mnist.npz")} and '
      'binarized_mnist_{train,valid,test}.amat in both folders; '
      f'{_BINARIZED_MNIST_HELP.format(folder=folders[0])}')


def _load_binarized_npz(path):
  # A damaged archive fails on opening or on reading a member, with any of
  # these types depending on where the damage is.
  read_errors = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
  try:
    npz = np.load(path)
  except read_errors as error:
    raise DataError(
        f'{path}: cannot read as .npz ({one_line(error)})') from error
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise DataError(f'{path}: holds a single array, not an .npz archive of '
                    'train, valid, test')
  with npz:
    missing = [split for split in _SPLIT_NAMES if split not in npz.files]
    if missing:
      raise DataError(
          f'{path}: missing array(s) {", ".join(missing)}; it holds '
          f'{", ".join(npz.files) or "no arrays"}; expected train, valid, test')
    try:
      arrays = {split: npz[split] for split in _SPLIT_NAMES}
    except read_errors as error:
      raise DataError(
          f'{path}: cannot read its arrays ({one_line(error)})') from error
  return Splits(*(_as_binary_images(arrays[split], f'{path}: array {split!r}')
                  for split in _SPLIT_NAMES))


def _as_binary_images(array, source):
  """Checks a [n,28,28] (or [n,784]) array of 0/1; returns uint8 [n,28,28,1]."""
  image_shapes = ((_IMAGE_SIZE, _IMAGE_SIZE), (_PIXELS,),
                  (_IMAGE_SIZE, _IMAGE_SIZE, 1))
  if array.ndim < 2 or array.shape[1:] not in image_shapes or not len(array):
    raise DataError(
        f'{source} has shape {array.shape}; expected [n, 28, 28] with n > 0')
  if array.dtype.kind not in 'biuf':
    raise DataError(f'{source} has dtype {array.dtype}; expected uint8')
  # One vectorised pass: for uint8 anything above 1 is wrong; other dtypes
  # could also hold negatives, fractions or NaN.
  if array.dtype == np.uint8:
    has_other_values = np.any(array > 1)
  else:
    has_other_values = np.any((array != 0) & (array != 1))
  if has_other_values:
    raise DataError(
        f'{source} has values outside {{0, 1}} (max {array.max()}); '
        "binarized_mnist must be 0/1, use data set 'mnist' for grey images")
  return array.astype(np.uint8).reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE, 1)


def _parse_amat(path):
  """Parses a Larochelle .amat file: one image a line, 784 spaced 0/1 digits."""
  try:
    with open(path, 'rb') as f:
      text = np.frombuffer(f.read(), np.uint8)
  except OSError as error:
    raise DataError(f'{path}: cannot read ({one_line(error)})') from error
  pixels = _parse_standard_amat(text)
  if pixels is None:
    pixels = _parse_any_amat(path, text)
  if np.any(pixels > 1):
    raise DataError(f'{path}: holds values other than 0 and 1')
  return pixels.reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE, 1)


def _parse_standard_amat(text):
  """Fast path for the published layout: 784 digits, single spaces, newline."""
  line_size = 2 * _PIXELS
  if not text.size or text.size % line_size:
    return None
  lines = text.reshape(-1, line_size)
  if np.any(lines[:, 1:-1:2] != ord(' ')) or np.any(lines[:, -1] != ord('\n')):
    return None
  # uint8 arithmetic wraps bytes below '0' to large values, so the caller's
  # `> 1` check also catches them.
  return lines[:, 0::2] - np.uint8(ord('0'))


def _parse_any_amat(path, text):
  """Slower path for other whitespace (CRLF, trailing spaces, blank lines)."""
  byte_class = _AMAT_BYTE_CLASS[text]
  invalid = np.flatnonzero(byte_class == _AMAT_INVALID)
  if invalid.size:
    position = invalid[0]
    raise DataError(
        f'{path}: line {_line_number(text, position)} holds '
        f'{chr(text[position])!r}; expected only 0/1 digits and spaces')
  is_pixel = byte_class < _AMAT_SPACE
  # Two adjacent digits would be a token like "10", not two pixels.
  glued = np.flatnonzero(is_pixel[1:] & is_pixel[:-1])
  if glued.size:
    raise DataError(
        f'{path}: line {_line_number(text, glued[0])} has a multi-digit value; '
        'expected single 0/1 digits separated by spaces')
  line_starts = np.concatenate([[0], np.flatnonzero(text == ord('\n')) + 1])
  line_starts = line_starts[line_starts < text.size]
  if not line_starts.size:
    raise DataError(f'{path}: file is empty; expected 784 values a line')
  pixels_per_line = np.add.reduceat(is_pixel, line_starts, dtype=np.int64)
  bad_lines = np.flatnonzero(
      (pixels_per_line != _PIXELS) & (pixels_per_line > 0))
  if bad_lines.size:
    line = bad_lines[0]
    raise DataError(
        f'{path}: line {line + 1} has {pixels_per_line[line]} values; '
        f'expected {_PIXELS}')
  pixels = byte_class[is_pixel]
  if not pixels.size:
    raise DataError(f'{path}: holds no images; expected 784 values a line')
  return pixels


def _line_number(text, position):
  return int(np.count_nonzero(text[:position] == ord('\n'))) + 1


# --- MNIST (IDX) -----------------------------------------------------------


def _load_mnist(data_dir):
  folders = candidate_folders(data_dir, 'mnist')
  paths = {filename: find_file(data_dir, folders, filename, _MNIST_HELP)
           for filename in (_MNIST_TRAIN_IMAGES, _MNIST_TRAIN_LABELS,
                            _MNIST_TEST_IMAGES, _MNIST_TEST_LABELS)}
  train_images, train_labels = _load_idx_images_with_labels(
      paths[_MNIST_TRAIN_IMAGES], paths[_MNIST_TRAIN_LABELS])
  test_images, test_labels = _load_idx_images_with_labels(
      paths[_MNIST_TEST_IMAGES], paths[_MNIST_TEST_LABELS])
  if len(train_images) != _MNIST_TRAIN_FILE_SIZE:
    raise DataError(
        f'{paths[_MNIST_TRAIN_IMAGES]}: holds {len(train_images)} images; '
        f'expected {_MNIST_TRAIN_FILE_SIZE} (split {_MNIST_TRAIN_SIZE} train + '
        f'{_MNIST_TRAIN_FILE_SIZE - _MNIST_TRAIN_SIZE} valid)')
  return Splits(train_images[:_MNIST_TRAIN_SIZE],
                train_images[_MNIST_TRAIN_SIZE:], test_images,
                train_labels[:_MNIST_TRAIN_SIZE],
                train_labels[_MNIST_TRAIN_SIZE:], test_labels)


def find_file(data_dir, folders, filename, how_to_get):
  """The first folder's copy of filename, else a DataError saying how_to_get."""
  paths = [os.path.join(folder, filename) for folder in folders]
  for path in paths:
    if os.path.isfile(path):
      return path
  raise DataError(
      f'{paths[0]}: not found, nor {paths[1]}{folder_note(data_dir)}; '
      f'{how_to_get} into {folders[0]}')


def _load_idx_images_with_labels(images_path, labels_path):
  """(images [n, 28, 28, 1], int32 labels [n]) from a pair of IDX files."""
  images = _read_idx(images_path, _IDX_IMAGES_MAGIC, (_IMAGE_SIZE, _IMAGE_SIZE))
  labels = _read_idx(labels_path, _IDX_LABELS_MAGIC, ())
  if len(images) != len(labels):
    raise DataError(
        f'{images_path}: holds {len(images)} images but {labels_path} holds '
        f'{len(labels)} labels')
  return (images.reshape(-1, _IMAGE_SIZE, _IMAGE_SIZE, 1),
          labels.astype(np.int32))


def _read_idx(path, magic, item_shape):
  """Reads a gzipped IDX file of uint8 values, validating its header."""
  content = _read_gzip(path)
  # Check the magic number before the rest of the header, whose length it sets.
  found_magic = int.from_bytes(content[:4], 'big')
  if len(content) < 4 or found_magic != magic:
    raise DataError(
        f'{path}: IDX magic number 0x{found_magic:08X}, expected 0x{magic:08X}')
  ndim = magic & 0xFF
  header_size = 4 + 4 * ndim
  if len(content) < header_size:
    raise DataError(
        f'{path}: {len(content)} bytes is too short for an IDX header')
  shape = tuple(int(d) for d in np.frombuffer(content, '>u4', ndim, offset=4))
  if shape[1:] != item_shape:
    expected_shape = ', '.join(['n', *map(str, item_shape)])
    raise DataError(
        f'{path}: IDX header says shape {shape}; expected [{expected_shape}]')
  expected_size = header_size + math.prod(shape)
  if len(content) != expected_size:
    raise DataError(
        f'{path}: IDX header says shape {shape} ({expected_size} bytes) but '
        f'the decompressed file has {len(content)} bytes')
  # Copy so callers get a writable array that does not pin the whole buffer.
  values = np.frombuffer(content, np.uint8, offset=header_size)
  return values.reshape(shape).copy()


def _read_gzip(path):
  try:
    with open(path, 'rb') as f:
      compressed = f.read()
  except OSError as error:
    raise DataError(f'{path}: cannot read ({one_line(error)})') from error
  try:
    return gzip.decompress(compressed)
  except (EOFError, OSError, zlib.error) as error:
    raise DataError(
        f'{path}: cannot decompress, the .gz file is truncated or corrupt '
        f'({one_line(error)}); download it again') from error


def one_line(error):
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__


# --- tensorflow-datasets ---------------------------------------------------


def _load_from_tfds(name):
  """Loads the same splits through tensorflow-datasets as uint8 arrays.

  For the generated scenes these are the MNIST splits they are built from.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise DataError(
        'no data folder given and tensorflow_datasets is not installed: set '
        'DRAW_DATA_DIR or data.dir to a folder holding the data, or '
        '`pip install draw_jax[tfds]`') from error
  tfds_name, splits = _TFDS_SOURCES[name]
  image_shape = IMAGE_SHAPES['mnist' if name in _SCENE_GENERATORS else name]
  images, labels = [], []
  for split in splits:
    try:
      dataset = tfds.as_numpy(tfds.load(tfds_name, split=split, batch_size=-1))
    except Exception as error:  # tfds fails with many types (download, build).
      raise DataError(
          f'tensorflow-datasets could not load {tfds_name} split {split!r} '
          f'({one_line(error)}); set DRAW_DATA_DIR or data.dir to a local '
          'copy instead') from error
    images.append(
        np.asarray(dataset['image'], np.uint8).reshape(-1, *image_shape))
    # binarized_mnist has no labels.
    labels.append(None if 'label' not in dataset
                  else np.asarray(dataset['label'], np.int32))
  return Splits(*images, *labels)
