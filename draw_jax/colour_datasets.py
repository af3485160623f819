"""Reads SVHN (cropped digits) and CIFAR-10 from their published files.

Both come back as `input_pipeline.Splits` of uint8 images [n, 32, 32, 3] and
int32 labels 0..9, with the last 5,000 training images held out for
validation:
- CIFAR-10: train = the first 45,000 images of data_batch_1..5, valid = the
  last 5,000, test = test_batch. Read from the folder cifar-10-batches-py/
  (as unpacked from cifar-10-python.tar.gz) or from that archive itself.
- SVHN: train = all but the last 5,000 images of train_32x32.mat (68,257),
  valid = its last 5,000, test = test_32x32.mat (26,032). Label 10 means 0.
Every problem raises `input_pipeline.DataError` naming the file.
"""
import os
import pickle
import tarfile

import numpy as np
import scipy.io

from draw_jax import input_pipeline

CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
SVHN_URL = 'http://ufldl.stanford.edu/housenumbers/'
VALID_SIZE = 5000

_IMAGE_SIZE = 32
_CHANNELS = 3
_CLASSES = 10

_CIFAR_FOLDER = 'cifar-10-batches-py'
_CIFAR_ARCHIVE = 'cifar-10-python.tar.gz'
_CIFAR_TRAIN_BATCHES = tuple(f'data_batch_{number}' for number in range(1, 6))
_CIFAR_TEST_BATCH = 'test_batch'
_CIFAR_BATCHES = _CIFAR_TRAIN_BATCHES + (_CIFAR_TEST_BATCH,)
# Each row is one image, channel-first: 1024 red, 1024 green, 1024 blue values,
# each plane row-major.
_CIFAR_ROW_SIZE = _CHANNELS * _IMAGE_SIZE * _IMAGE_SIZE
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

_DataError = input_pipeline.DataError


def load_cifar10(data_dir):
  """CIFAR-10 splits from data_dir/cifar10/ or data_dir/ (folder or archive)."""
  folders = input_pipeline.candidate_folders(data_dir, 'cifar10')
  for folder in folders:
    batch_folder = os.path.join(folder, _CIFAR_FOLDER)
    if os.path.isdir(batch_folder):
      return _cifar_splits(_read_cifar_folder(batch_folder), batch_folder)
  for folder in folders:
    archive = os.path.join(folder, _CIFAR_ARCHIVE)
    if os.path.isfile(archive):
      return _cifar_splits(_read_cifar_archive(archive), archive)
  expected = os.path.join(folders[0], _CIFAR_FOLDER, _CIFAR_TRAIN_BATCHES[0])
  raise _DataError(
      f'{expected}: not found{input_pipeline.folder_note(data_dir)}; also '
      f'looked for {os.path.join(folders[1], _CIFAR_FOLDER)} and '
      f'{_CIFAR_ARCHIVE} in both folders; download {CIFAR10_URL} and unpack '
      f'it (or just put it) into {folders[0]}')


def load_svhn(data_dir):
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
      raise _DataError(
          f'{path}: not found, although the folder {batch_folder} exists; '
          f'download {CIFAR10_URL} and unpack it again')
    try:
      with open(path, 'rb') as f:
        batches[name] = _parse_cifar_batch(f, path)
    except OSError as error:
      raise _DataError(
          f'{path}: cannot read ({input_pipeline.one_line(error)})') from error
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
    raise _DataError(
        f'{archive}: cannot read as .tar.gz '
        f'({input_pipeline.one_line(error)}); download {CIFAR10_URL} again'
    ) from error
  missing = [member for member, name in wanted.items() if name not in batches]
  if missing:
    raise _DataError(
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
    raise _DataError(
        f'{source}: cannot unpickle ({input_pipeline.one_line(error)}); '
        f'download {CIFAR10_URL} again') from error
  if not isinstance(batch, dict):
    raise _DataError(f'{source}: holds a {type(batch).__name__}; expected the '
                     "dict of b'data' and b'labels' of a CIFAR-10 batch")
  data = np.asarray(_batch_entry(batch, 'data', source))
  labels = np.asarray(_batch_entry(batch, 'labels', source))
  if (data.dtype != np.uint8 or data.ndim != 2
      or data.shape[1] != _CIFAR_ROW_SIZE):
    raise _DataError(
        f"{source}: b'data' is {data.dtype} with shape {data.shape}; expected "
        f'uint8 [n, {_CIFAR_ROW_SIZE}]')
  if labels.shape != (len(data),):
    raise _DataError(f"{source}: {len(data)} images in b'data' but b'labels' "
                     f'has shape {labels.shape}')
  images = data.reshape(-1, _CHANNELS, _IMAGE_SIZE, _IMAGE_SIZE)
  return (np.ascontiguousarray(images.transpose(0, 2, 3, 1)),
          _as_class_labels(labels, 0, f"{source}: b'labels'"))


def _batch_entry(batch, key, source):
  # Python 3 writers may use str keys where the original has bytes keys.
  for candidate in (key.encode(), key):
    if candidate in batch:
      return batch[candidate]
  found = ', '.join(repr(k) for k in batch) or 'nothing'
  raise _DataError(f"{source}: has no b'{key}' entry; it holds {found}")


def _cifar_splits(batches, source):
  train = [batches[name] for name in _CIFAR_TRAIN_BATCHES]
  train_images = np.concatenate([images for images, _ in train])
  train_labels = np.concatenate([labels for _, labels in train])
  test_images, test_labels = batches[_CIFAR_TEST_BATCH]
  return _hold_out_valid(train_images, train_labels, test_images, test_labels,
                         source)


# --- SVHN -------------------------------------------------------------------


def _find_svhn_file(data_dir, filename):
  return input_pipeline.find_file(
      data_dir, input_pipeline.candidate_folders(data_dir, 'svhn'), filename,
      f'download {_SVHN_TRAIN} and {_SVHN_TEST} (format 2, cropped digits) '
      f'from {SVHN_URL}')


def _read_svhn_mat(path):
  """(uint8 images [n, 32, 32, 3], int32 labels 0..9) from an SVHN .mat file."""
  try:
    contents = scipy.io.loadmat(path)
  except Exception as error:  # Damaged files fail with many error types.
    raise _DataError(
        f'{path}: cannot read as a MATLAB .mat file '
        f'({input_pipeline.one_line(error)}); download it again from '
        f'{SVHN_URL}') from error
  missing = [key for key in ('X', 'y') if key not in contents]
  if missing:
    found = ', '.join(key for key in contents if not key.startswith('__'))
    raise _DataError(f'{path}: has no variable {", ".join(missing)}; it holds '
                     f'{found or "nothing"}; expected X and y')
  pixels, labels = contents['X'], contents['y']
  image_shape = (_IMAGE_SIZE, _IMAGE_SIZE, _CHANNELS)
  if (pixels.dtype != np.uint8 or pixels.ndim != 4
      or pixels.shape[:3] != image_shape):
    raise _DataError(f'{path}: X is {pixels.dtype} with shape {pixels.shape}; '
                     'expected uint8 [32, 32, 3, n]')
  count = pixels.shape[3]
  if labels.shape not in ((count, 1), (1, count), (count,)):
    raise _DataError(f'{path}: X holds {count} images but y has shape '
                     f'{labels.shape}; expected [{count}, 1]')
  labels = _as_class_labels(labels.reshape(-1), 1, f'{path}: y')
  # SVHN numbers its classes 1..10, with 10 standing for the digit 0.
  return np.ascontiguousarray(pixels.transpose(3, 0, 1, 2)), labels % _CLASSES


# --- shared -------------------------------------------------------------------


def _as_class_labels(labels, first_class, source):
  """Checks labels are whole numbers first_class..first_class + 9; int32."""
  last_class = first_class + _CLASSES - 1
  if labels.dtype.kind not in 'biuf':
    raise _DataError(f'{source} has dtype {labels.dtype}; expected integers')
  valid = (labels >= first_class) & (labels <= last_class) & (labels % 1 == 0)
  if not np.all(valid):
    bad = labels[~valid][0]
    raise _DataError(f'{source} holds {bad}; expected whole numbers '
                     f'{first_class}..{last_class}')
  return labels.astype(np.int32)


def _hold_out_valid(train_images, train_labels, test_images, test_labels,
                    source):
  """The last VALID_SIZE training images become the validation split."""
  if len(train_images) <= VALID_SIZE:
    raise _DataError(
        f'{source}: holds {len(train_images)} training images; expected more '
        f'than {VALID_SIZE}, since the last {VALID_SIZE} are the validation '
        'split')
  split = len(train_images) - VALID_SIZE
  return input_pipeline.Splits(
      train_images[:split], train_images[split:], test_images,
      train_labels[:split], train_labels[split:], test_labels)
