"""Tests for draw_jax.input_pipeline: real data, tiny broken files, binarize."""
import gzip
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from draw_jax import datasets
from draw_jax import input_pipeline

jax.config.update('jax_numpy_rank_promotion', 'raise')



@pytest.fixture(scope='module')
def real_binarized_mnist(data_dir):
  return datasets.load_splits('binarized_mnist', data_dir)


@pytest.fixture(scope='module')
def real_mnist(data_dir):
  return datasets.load_splits('mnist', data_dir)


# --- real data --------------------------------------------------------------


def test_real_binarized_mnist_has_expected_splits(real_binarized_mnist):
  splits = real_binarized_mnist
  assert [split.shape for split in splits.images] == [
      (50000, 28, 28, 1), (10000, 28, 28, 1), (10000, 28, 28, 1)]
  for split in splits.images:
    assert split.dtype == np.uint8
    # uint8, so min 0 and max 1 means every value is 0 or 1.
    assert split.min() == 0 and split.max() == 1
  # Means published with the data (README): 0.13056 / 0.13113 / 0.13251.
  assert splits.train.mean() == pytest.approx(0.1306, abs=2e-4)
  assert splits.valid.mean() == pytest.approx(0.1311, abs=2e-4)
  assert splits.test.mean() == pytest.approx(0.1325, abs=2e-4)


def test_real_mnist_is_grey_and_split_50000_10000_10000(real_mnist):
  splits = real_mnist
  assert [split.shape for split in splits.images] == [
      (50000, 28, 28, 1), (10000, 28, 28, 1), (10000, 28, 28, 1)]
  for split in splits.images:
    assert split.dtype == np.uint8
    assert split.max() == 255
  # Full training set mean intensity is 0.1307 (README), test 0.1325.
  train_and_valid = np.concatenate([splits.train, splits.valid])
  assert train_and_valid.mean() / 255 == pytest.approx(0.1307, abs=2e-4)
  assert splits.test.mean() / 255 == pytest.approx(0.1325, abs=2e-4)


def test_default_binarization():
  assert datasets.spec('binarized_mnist').binarization == 'none'
  assert datasets.spec('mnist').binarization == 'dynamic'


# --- resolve_data_dir -------------------------------------------------------


def test_resolve_data_dir_prefers_config_then_env(monkeypatch):
  monkeypatch.setenv('DRAW_DATA_DIR', '/from/env')
  assert datasets.resolve_data_dir('/from/config') == '/from/config'
  assert datasets.resolve_data_dir('') == '/from/env'
  assert datasets.resolve_data_dir(None) == '/from/env'
  monkeypatch.delenv('DRAW_DATA_DIR')
  assert datasets.resolve_data_dir('') is None


def test_no_data_dir_without_tfds_says_how_to_fix(monkeypatch):
  monkeypatch.delenv('DRAW_DATA_DIR', raising=False)
  # A None entry in sys.modules makes `import tensorflow_datasets` fail.
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(datasets.DataError, match='DRAW_DATA_DIR') as error:
    datasets.load_splits('mnist', None)
  assert "pip install 'draw_jax[tfds]'" in str(error.value)


# --- .amat ------------------------------------------------------------------


def _write_amat(path, images, newline='\n'):
  rows = images.reshape(len(images), -1)
  path.write_text(''.join(' '.join(map(str, row)) + newline for row in rows),
                  newline='')


def _random_binary_images(seed, count):
  rng = np.random.default_rng(seed)
  return (rng.random((count, 28, 28)) < 0.2).astype(np.uint8)


@pytest.mark.parametrize('newline', ['\n', '\r\n'])
def test_amat_files_parse_to_the_written_images(tmp_path, newline):
  folder = tmp_path / 'binarized_mnist'
  folder.mkdir()
  written = {}
  for seed, split in enumerate(['train', 'valid', 'test']):
    written[split] = _random_binary_images(seed, count=3 + seed)
    _write_amat(folder / f'binarized_mnist_{split}.amat', written[split],
                newline)
  splits = datasets.load_splits('binarized_mnist', str(tmp_path))
  for split in ['train', 'valid', 'test']:
    loaded = getattr(splits, split)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, written[split][..., None])


def test_amat_with_a_short_line_names_file_and_line(tmp_path):
  for split in ['train', 'valid', 'test']:
    _write_amat(tmp_path / f'binarized_mnist_{split}.amat',
                _random_binary_images(0, count=2))
  broken = tmp_path / 'binarized_mnist_valid.amat'
  lines = broken.read_text().splitlines()
  broken.write_text(lines[0] + '\n' + lines[1][:-2] + '\n')
  with pytest.raises(datasets.DataError,
                     match=r'binarized_mnist_valid\.amat: line 2 has 783'):
    datasets.load_splits('binarized_mnist', str(tmp_path))


def test_amat_with_a_2_is_rejected(tmp_path):
  for split in ['train', 'valid', 'test']:
    images = _random_binary_images(0, count=2)
    if split == 'test':
      images[1, 5, 5] = 2
    _write_amat(tmp_path / f'binarized_mnist_{split}.amat', images)
  with pytest.raises(datasets.DataError,
                     match=r'binarized_mnist_test\.amat: .*other than 0 and 1'):
    datasets.load_splits('binarized_mnist', str(tmp_path))


# --- .npz -------------------------------------------------------------------


def test_npz_at_top_level_loads(tmp_path):
  arrays = {split: _random_binary_images(seed, count=2)
            for seed, split in enumerate(['train', 'valid', 'test'])}
  np.savez(tmp_path / 'binarized_mnist.npz', **arrays)
  splits = datasets.load_splits('binarized_mnist', str(tmp_path))
  np.testing.assert_array_equal(splits.valid, arrays['valid'][..., None])


def test_npz_missing_arrays_names_missing_and_present(tmp_path):
  path = tmp_path / 'binarized_mnist.npz'
  np.savez(path, train=_random_binary_images(0, 2),
           validation=_random_binary_images(1, 2))
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('binarized_mnist', str(tmp_path))
  message = str(error.value)
  assert str(path) in message
  assert 'missing array(s) valid, test' in message
  assert 'it holds train, validation' in message
  assert '\n' not in message


def test_npz_with_a_2_is_rejected(tmp_path):
  arrays = {split: _random_binary_images(seed, count=2)
            for seed, split in enumerate(['train', 'valid', 'test'])}
  arrays['train'][0, 3, 4] = 2
  np.savez(tmp_path / 'binarized_mnist.npz', **arrays)
  with pytest.raises(datasets.DataError,
                     match=r"array 'train' has values outside \{0, 1\}"):
    datasets.load_splits('binarized_mnist', str(tmp_path))


def test_npz_with_wrong_shape_is_rejected(tmp_path):
  arrays = {split: _random_binary_images(seed, count=2)
            for seed, split in enumerate(['train', 'valid', 'test'])}
  arrays['test'] = arrays['test'][:, :27, :]
  np.savez(tmp_path / 'binarized_mnist.npz', **arrays)
  with pytest.raises(datasets.DataError,
                     match=r"array 'test' has shape \(2, 27, 28\)"):
    datasets.load_splits('binarized_mnist', str(tmp_path))


def test_missing_binarized_folder_names_file_and_source(tmp_path):
  data_dir = tmp_path / 'nowhere'
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('binarized_mnist', str(data_dir))
  message = str(error.value)
  assert str(data_dir / 'binarized_mnist' / 'binarized_mnist.npz') in message
  assert 'binarized_mnist_{train,valid,test}.amat' in message
  assert ('http://www.cs.toronto.edu/~larocheh/public/datasets/'
          'binarized_mnist/') in message
  assert '\n' not in message


# --- IDX (MNIST) ------------------------------------------------------------


def _idx_bytes(magic, shape, payload=None):
  header = magic.to_bytes(4, 'big') + b''.join(
      dim.to_bytes(4, 'big') for dim in shape)
  if payload is None:
    payload = bytes(int(np.prod(shape)))
  return header + payload


def _write_gz(path, content):
  path.write_bytes(gzip.compress(content))


def _write_tiny_mnist(folder, train_count=2, test_count=3):
  """Valid IDX files of black images (too few train images to split)."""
  folder.mkdir(exist_ok=True)
  _write_gz(folder / 'train-images-idx3-ubyte.gz',
            _idx_bytes(0x803, (train_count, 28, 28)))
  _write_gz(folder / 'train-labels-idx1-ubyte.gz',
            _idx_bytes(0x801, (train_count,)))
  _write_gz(folder / 't10k-images-idx3-ubyte.gz',
            _idx_bytes(0x803, (test_count, 28, 28)))
  _write_gz(folder / 't10k-labels-idx1-ubyte.gz',
            _idx_bytes(0x801, (test_count,)))


def test_mnist_files_at_top_level_load_and_split(tmp_path):
  _write_tiny_mnist(tmp_path, train_count=60000)
  splits = datasets.load_splits('mnist', str(tmp_path))
  assert [len(split) for split in splits.images] == [50000, 10000, 3]


def test_truncated_gz_is_reported(tmp_path):
  _write_tiny_mnist(tmp_path / 'mnist')
  path = tmp_path / 'mnist' / 't10k-labels-idx1-ubyte.gz'
  path.write_bytes(path.read_bytes()[:-12])
  with pytest.raises(datasets.DataError,
                     match=r't10k-labels-idx1-ubyte\.gz: .*truncated'):
    datasets.load_splits('mnist', str(tmp_path))


def test_wrong_magic_is_reported(tmp_path):
  _write_tiny_mnist(tmp_path / 'mnist')
  # Labels where images belong: magic 0x801 instead of 0x803.
  _write_gz(tmp_path / 'mnist' / 't10k-images-idx3-ubyte.gz',
            _idx_bytes(0x801, (3,)))
  with pytest.raises(
      datasets.DataError,
      match=r't10k-images-idx3-ubyte\.gz: IDX magic number 0x00000801, '
            r'expected 0x00000803'):
    datasets.load_splits('mnist', str(tmp_path))


def test_header_size_mismatch_is_reported(tmp_path):
  _write_tiny_mnist(tmp_path / 'mnist')
  # Header claims 3 images, payload holds 2.
  _write_gz(tmp_path / 'mnist' / 't10k-images-idx3-ubyte.gz',
            _idx_bytes(0x803, (3, 28, 28), bytes(2 * 28 * 28)))
  with pytest.raises(
      datasets.DataError,
      match=r't10k-images-idx3-ubyte\.gz: IDX header says shape \(3, 28, 28\) '
            r'\(2368 bytes\) but the decompressed file has 1584 bytes'):
    datasets.load_splits('mnist', str(tmp_path))


def test_label_image_length_mismatch_is_reported(tmp_path):
  _write_tiny_mnist(tmp_path / 'mnist')
  _write_gz(tmp_path / 'mnist' / 't10k-labels-idx1-ubyte.gz',
            _idx_bytes(0x801, (4,)))
  with pytest.raises(datasets.DataError,
                     match=r'holds 3 images but .*t10k-labels-idx1-ubyte\.gz '
                           r'holds 4 labels'):
    datasets.load_splits('mnist', str(tmp_path))


def test_missing_mnist_folder_names_file_and_source(tmp_path):
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('mnist', str(tmp_path))
  message = str(error.value)
  assert str(tmp_path / 'mnist' / 'train-images-idx3-ubyte.gz') in message
  assert 'http://yann.lecun.com/exdb/mnist/' in message
  assert '\n' not in message


def test_unknown_data_set_lists_known_names(tmp_path):
  with pytest.raises(
      datasets.DataError,
      match="unknown data set 'imagenet'.*binarized_mnist, mnist, "
            'mnist_two_digit, cluttered_mnist, coloured_mnist, svhn, cifar10'):
    datasets.load_splits('imagenet', str(tmp_path))


# --- binarize ---------------------------------------------------------------


_binarize = jax.jit(input_pipeline.binarize, static_argnames='method')


def test_binarize_none_keeps_binary_values():
  images = jnp.asarray(_random_binary_images(0, count=4))
  result = _binarize(images, 'none', None)
  assert result.dtype == jnp.float32
  np.testing.assert_array_equal(result, np.asarray(images, np.float32))


def test_binarize_static_thresholds_at_128():
  images = jnp.arange(256, dtype=jnp.uint8)
  result = np.asarray(_binarize(images, 'static', None))
  assert result.dtype == np.float32
  np.testing.assert_array_equal(result[:128], 0.0)
  np.testing.assert_array_equal(result[128:], 1.0)


def test_binarize_dynamic_samples_with_pixel_intensity():
  grey = np.random.default_rng(0).integers(0, 256, (256, 28, 28, 1), np.uint8)
  images = jnp.asarray(grey)
  first = np.asarray(_binarize(images, 'dynamic', jax.random.key(0)))
  second = np.asarray(_binarize(images, 'dynamic', jax.random.key(1)))
  assert set(np.unique(first)) == {0.0, 1.0}
  # 200k pixels: the sample mean's standard error is about 0.001.
  assert first.mean() == pytest.approx(grey.mean() / 255, abs=0.005)
  assert np.mean(first != second) > 0.2
  # Black pixels never turn on and white pixels always do.
  np.testing.assert_array_equal(first[grey == 0], 0.0)
  np.testing.assert_array_equal(first[grey == 255], 1.0)


def test_binarize_unknown_method_names_choices():
  with pytest.raises(ValueError, match="'none', 'dynamic', 'static'"):
    input_pipeline.binarize(jnp.zeros((1, 28, 28, 1), jnp.uint8), 'otsu', None)
