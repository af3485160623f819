"""Readers of the data sets' files, and of tensorflow-datasets.

Each reader takes a data folder and returns `Splits` of uint8 images
[n, H, W, C] (and int32 labels where there are any) or raises `DataError`,
one line that names the file and says what is wrong:
- binarized_mnist: binarized_mnist.npz, or Larochelle's three .amat files;
- mnist: the four IDX .gz files; the last 10,000 training images are valid;
- cifar10: cifar-10-batches-py/ or cifar-10-python.tar.gz; svhn: the cropped
  digits' train_32x32.mat and test_32x32.mat. Both hold out the last 5,000
  training images for validation.
`datasets.DATASETS` says which reader (or tfds builder) each data set takes.
"""
import gzip
import math
import os
import pickle
import tarfile
import zipfile
import zlib
from typing import NamedTuple

import numpy as np

_MNIST_SIZE = 28
_PIXELS = _MNIST_SIZE * _MNIST_SIZE
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

# Examples per tfds batch: whole splits at once (batch_size=-1) abort the
# process under tfds.testing.mock_data.
_TFDS_BATCH = 10_000

# Byte -> meaning in a .amat file: 0 and 1 are pixels, 2 is whitespace and 3
# is anything else, so one table lookup classifies every byte at numpy speed.
_AMAT_PIXEL_0, _AMAT_PIXEL_1, _AMAT_SPACE, _AMAT_INVALID = 0, 1, 2, 3
_AMAT_BYTE_CLASS = np.full(256, _AMAT_INVALID, np.uint8)
_AMAT_BYTE_CLASS[ord('0')] = _AMAT_PIXEL_0
_AMAT_BYTE_CLASS[ord('1')] = _AMAT_PIXEL_1
_AMAT_BYTE_CLASS[list(b' \t\r\n')] = _AMAT_SPACE


CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
SVHN_URL = 'http://ufldl.stanford.edu/housenumbers/'
VALID_SIZE = 5000

_COLOUR_SIZE = 32
_CHANNELS = 3
_CLASSES = 10

_CIFAR_FOLDER = 'cifar-10-batches-py'
_CIFAR_ARCHIVE = 'cifar-10-python.tar.gz'
_CIFAR_TRAIN_BATCHES = tuple(f'data_batch_{number}' for number in range(1, 6))
_CIFAR_TEST_BATCH = 'test_batch'
_CIFAR_BATCHES = _CIFAR_TRAIN_BATCHES + (_CIFAR_TEST_BATCH,)
# Each row is one image, channel-first: 1024 red, 1024 green, 1024 blue values,
# each plane row-major.
_CIFAR_ROW_SIZE = _CHANNELS * _COLOUR_SIZE * _COLOUR_SIZE
# What a CIFAR batch pickle may name: numpy's array rebuilders (old and new
# module paths) and the codec Python 3 uses for bytes in protocol 2. Anything
# else would run code from the file, which a data file never needs.
_CIFAR_PICKLE_GLOBALS = frozenset([
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.numeric', '_frombuffer'),
    ('_codecs', 'encode'),
])

_SVHN_TRAIN = 'train_32x32.mat'
_SVHN_TEST = 'test_32x32.mat'


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


def candidate_folders(data_dir, name):
  """Files may sit in a subfolder named after the data set or at the top."""
  return (os.path.join(data_dir, name), data_dir)


def folder_note(data_dir):
  if os.path.isdir(data_dir):
    return ''
  return f' (the data folder {data_dir} does not exist)'


# --- binarized MNIST -------------------------------------------------------


def binarized_mnist(data_dir):
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
  return Splits(*(as_binary_images(arrays[split], f'{path}: array {split!r}')
                  for split in _SPLIT_NAMES))


def as_binary_images(array, source):
  """Checks a [n,28,28] (or [n,784]) array of 0/1; returns uint8 [n,28,28,1]."""
  image_shapes = ((_MNIST_SIZE, _MNIST_SIZE), (_PIXELS,),
                  (_MNIST_SIZE, _MNIST_SIZE, 1))
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
  return array.astype(np.uint8).reshape(-1, _MNIST_SIZE, _MNIST_SIZE, 1)


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
  return pixels.reshape(-1, _MNIST_SIZE, _MNIST_SIZE, 1)


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


def mnist(data_dir):
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
  images = _read_idx(images_path, _IDX_IMAGES_MAGIC, (_MNIST_SIZE, _MNIST_SIZE))
  labels = _read_idx(labels_path, _IDX_LABELS_MAGIC, ())
  if len(images) != len(labels):
    raise DataError(
        f'{images_path}: holds {len(images)} images but {labels_path} holds '
        f'{len(labels)} labels')
  return (images.reshape(-1, _MNIST_SIZE, _MNIST_SIZE, 1),
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


def from_tfds(tfds_name, split_names, image_shape):
  """Splits from tensorflow-datasets builder tfds_name, as uint8 arrays.

  split_names are tfds's strings for train, valid and test.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise DataError(
        'no data folder given and tensorflow_datasets is not installed: set '
        'DRAW_DATA_DIR or data.dir to a folder holding the data, or '
        "`pip install 'draw_jax[tfds]'`") from error
  arrays = []
  for split in split_names:
    try:
      arrays.append(_tfds_split(tfds, tfds_name, split, image_shape))
    except Exception as error:  # tfds fails with many types (download, build).
      raise DataError(
          f'tensorflow-datasets could not load {tfds_name} split {split!r} '
          f'({one_line(error)}); set DRAW_DATA_DIR or data.dir to a local '
          'copy instead') from error
  images, labels = zip(*arrays)
  return Splits(*images, *labels)


def _tfds_split(tfds, tfds_name, split, image_shape):
  """(uint8 images [n, H, W, C], int32 labels or None) of one split."""
  dataset = tfds.load(tfds_name, split=split)
  images, labels = [], []
  for batch in tfds.as_numpy(dataset.batch(_TFDS_BATCH)):
    images.append(np.asarray(batch['image'], np.uint8).reshape(-1, *image_shape))
    if 'label' in batch:  # binarized_mnist has none
      labels.append(np.asarray(batch['label'], np.int32))
  if not images:
    raise DataError(f'tensorflow-datasets gave no examples for {tfds_name} '
                    f'split {split!r}')
  return np.concatenate(images), np.concatenate(labels) if labels else None


# --- CIFAR-10 and SVHN ------------------------------------------------------


def cifar10(data_dir):
  """CIFAR-10 splits from data_dir/cifar10/ or data_dir/ (folder or archive)."""
  folders = candidate_folders(data_dir, 'cifar10')
  for folder in folders:
    batch_folder = os.path.join(folder, _CIFAR_FOLDER)
    if os.path.isdir(batch_folder):
      return _cifar_splits(_read_cifar_folder(batch_folder), batch_folder)
  for folder in folders:
    archive = os.path.join(folder, _CIFAR_ARCHIVE)
    if os.path.isfile(archive):
      return _cifar_splits(_read_cifar_archive(archive), archive)
  expected = os.path.join(folders[0], _CIFAR_FOLDER, _CIFAR_TRAIN_BATCHES[0])
  raise DataError(
      f'{expected}: not found{folder_note(data_dir)}; also '
      f'looked for {os.path.join(folders[1], _CIFAR_FOLDER)} and '
      f'{_CIFAR_ARCHIVE} in both folders; download {CIFAR10_URL} and unpack '
      f'it (or just put it) into {folders[0]}')


def svhn(data_dir):
  """SVHN cropped-digit splits from data_dir/svhn/ or data_dir/."""
  train_path = _find_svhn_file(data_dir, _SVHN_TRAIN)
  test_path = _find_svhn_file(data_dir, _SVHN_TEST)
  train_images, train_labels = _read_svhn_mat(train_path)
  test_images, test_labels = _read_svhn_mat(test_path)
  return _hold_out_valid(train_images, train_labels, test_images, test_labels,
                         train_path)


# --- CIFAR-10 ---------------------------------------------------------------


def _read_cifar_folder(batch_folder):
  """{batch name: (images, labels)} from the unpacked python batches."""
  batches = {}
  for name in _CIFAR_BATCHES:
    path = os.path.join(batch_folder, name)
    if not os.path.isfile(path):
      raise DataError(
          f'{path}: not found, although the folder {batch_folder} exists; '
          f'download {CIFAR10_URL} and unpack it again')
    try:
      with open(path, 'rb') as f:
        batches[name] = _parse_cifar_batch(f, path)
    except OSError as error:
      raise DataError(
          f'{path}: cannot read ({one_line(error)})') from error
  return batches


def _read_cifar_archive(archive):
  """{batch name: (images, labels)} read straight from the .tar.gz."""
  wanted = {f'{_CIFAR_FOLDER}/{name}': name for name in _CIFAR_BATCHES}
  batches = {}
  # One pass in archive order: a gzip stream cannot seek back cheaply.
  try:
    with tarfile.open(archive, 'r:gz') as tar:
      for member in tar:
        if member.name in wanted and member.isfile():
          source = f'{archive} member {member.name}'
          batches[wanted[member.name]] = _parse_cifar_batch(
              tar.extractfile(member), source)
  except (tarfile.TarError, OSError, EOFError) as error:
    raise DataError(
        f'{archive}: cannot read as .tar.gz '
        f'({one_line(error)}); download {CIFAR10_URL} again'
    ) from error
  missing = [member for member, name in wanted.items() if name not in batches]
  if missing:
    raise DataError(
        f'{archive}: has no member {", ".join(missing)}; download '
        f'{CIFAR10_URL} again')
  return batches


class _ArrayOnlyUnpickler(pickle.Unpickler):
  """Unpickles dicts, lists and numpy arrays; refuses to import anything else."""

  def find_class(self, module, name):
    if (module, name) in _CIFAR_PICKLE_GLOBALS:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(
        f'refuses to load {module}.{name}; a CIFAR batch holds only numpy '
        'arrays, lists and bytes')


def _parse_cifar_batch(file, source):
  """(uint8 images [n, 32, 32, 3], int32 labels [n]) from one batch pickle."""
  try:
    # The batches were pickled by Python 2; 'bytes' keeps its str as bytes.
    batch = _ArrayOnlyUnpickler(file, encoding='bytes').load()
  except Exception as error:  # Damaged pickles fail with many error types.
    raise DataError(
        f'{source}: cannot unpickle ({one_line(error)}); '
        f'download {CIFAR10_URL} again') from error
  if not isinstance(batch, dict):
    raise DataError(f'{source}: holds a {type(batch).__name__}; expected the '
                     "dict of b'data' and b'labels' of a CIFAR-10 batch")
  data = np.asarray(_batch_entry(batch, 'data', source))
  labels = np.asarray(_batch_entry(batch, 'labels', source))
  if (data.dtype != np.uint8 or data.ndim != 2
      or data.shape[1] != _CIFAR_ROW_SIZE):
    raise DataError(
        f"{source}: b'data' is {data.dtype} with shape {data.shape}; expected "
        f'uint8 [n, {_CIFAR_ROW_SIZE}]')
  if labels.shape != (len(data),):
    raise DataError(f"{source}: {len(data)} images in b'data' but b'labels' "
                     f'has shape {labels.shape}')
  images = data.reshape(-1, _CHANNELS, _COLOUR_SIZE, _COLOUR_SIZE)
  return (np.ascontiguousarray(images.transpose(0, 2, 3, 1)),
          _as_class_labels(labels, 0, f"{source}: b'labels'"))


def _batch_entry(batch, key, source):
  # Python 3 writers may use str keys where the original has bytes keys.
  for candidate in (key.encode(), key):
    if candidate in batch:
      return batch[candidate]
  found = ', '.join(repr(k) for k in batch) or 'nothing'
  raise DataError(f"{source}: has no b'{key}' entry; it holds {found}")


def _cifar_splits(batches, source):
  train = [batches[name] for name in _CIFAR_TRAIN_BATCHES]
  train_images = np.concatenate([images for images, _ in train])
  train_labels = np.concatenate([labels for _, labels in train])
  test_images, test_labels = batches[_CIFAR_TEST_BATCH]
  return _hold_out_valid(train_images, train_labels, test_images, test_labels,
                         source)


# --- SVHN -------------------------------------------------------------------


def _find_svhn_file(data_dir, filename):
  return find_file(
      data_dir, candidate_folders(data_dir, 'svhn'), filename,
      f'download {_SVHN_TRAIN} and {_SVHN_TEST} (format 2, cropped digits) '
      f'from {SVHN_URL}')


def _read_svhn_mat(path):
  """(uint8 images [n, 32, 32, 3], int32 labels 0..9) from an SVHN .mat file."""
  import scipy.io  # here, not at the top: 0.27 s that only SVHN's files need
  try:
    contents = scipy.io.loadmat(path)
  except Exception as error:  # Damaged files fail with many error types.
    raise DataError(
        f'{path}: cannot read as a MATLAB .mat file '
        f'({one_line(error)}); download it again from '
        f'{SVHN_URL}') from error
  missing = [key for key in ('X', 'y') if key not in contents]
  if missing:
    found = ', '.join(key for key in contents if not key.startswith('__'))
    raise DataError(f'{path}: has no variable {", ".join(missing)}; it holds '
                     f'{found or "nothing"}; expected X and y')
  pixels, labels = contents['X'], contents['y']
  image_shape = (_COLOUR_SIZE, _COLOUR_SIZE, _CHANNELS)
  if (pixels.dtype != np.uint8 or pixels.ndim != 4
      or pixels.shape[:3] != image_shape):
    raise DataError(f'{path}: X is {pixels.dtype} with shape {pixels.shape}; '
                     'expected uint8 [32, 32, 3, n]')
  count = pixels.shape[3]
  if labels.shape not in ((count, 1), (1, count), (count,)):
    raise DataError(f'{path}: X holds {count} images but y has shape '
                     f'{labels.shape}; expected [{count}, 1]')
  labels = _as_class_labels(labels.reshape(-1), 1, f'{path}: y')
  # SVHN numbers its classes 1..10, with 10 standing for the digit 0.
  return np.ascontiguousarray(pixels.transpose(3, 0, 1, 2)), labels % _CLASSES


# --- shared -------------------------------------------------------------------


def _as_class_labels(labels, first_class, source):
  """Checks labels are whole numbers first_class..first_class + 9; int32."""
  last_class = first_class + _CLASSES - 1
  if labels.dtype.kind not in 'biuf':
    raise DataError(f'{source} has dtype {labels.dtype}; expected integers')
  valid = (labels >= first_class) & (labels <= last_class) & (labels % 1 == 0)
  if not np.all(valid):
    bad = labels[~valid][0]
    raise DataError(f'{source} holds {bad}; expected whole numbers '
                     f'{first_class}..{last_class}')
  return labels.astype(np.int32)


def _hold_out_valid(train_images, train_labels, test_images, test_labels,
                    source):
  """The last VALID_SIZE training images become the validation split."""
  if len(train_images) <= VALID_SIZE:
    raise DataError(
        f'{source}: holds {len(train_images)} training images; expected more '
        f'than {VALID_SIZE}, since the last {VALID_SIZE} are the validation '
        'split')
  split = len(train_images) - VALID_SIZE
  return Splits(
      train_images[:split], train_images[split:], test_images,
      train_labels[:split], train_labels[split:], test_labels)
