"""Tests for the MNIST scenes, the SVHN / CIFAR-10 readers and their loading."""
import dataclasses
import functools
import os
import pickle
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
from numpy.lib.stride_tricks import sliding_window_view

import data_files
from configs import cluttered_mnist_cls
from draw_jax import dataset_files
from draw_jax import datasets
from draw_jax import input_pipeline
from draw_jax import mnist_scenes
from draw_jax import settings

_SCENE_SETS = ('mnist_two_digit', 'cluttered_mnist', 'coloured_mnist')
_SMALL = 200


@pytest.fixture(scope='module')
def small_mnist(data_dir):
  return datasets.load_splits('mnist', data_dir, max_examples=_SMALL)


def _square_digits(values):
  """Fake digits: digit k is a solid 28x28 square of brightness values[k]."""
  values = np.asarray(values, np.uint8)
  return np.broadcast_to(values[:, None, None, None], (len(values), 28, 28, 1))


def _masses(images):
  return images.reshape(len(images), -1).sum(axis=1, dtype=np.int64)


def _holds_whole(scene_HxW, digit_HxW):
  """True if some window of the scene is >= the digit at every pixel."""
  windows = sliding_window_view(scene_HxW, digit_HxW.shape)
  return bool(np.any(np.all(windows >= digit_HxW, axis=(2, 3))))


# --- two digits -------------------------------------------------------------


def test_two_digit_is_deterministic_per_seed(small_mnist):
  scenes = mnist_scenes.two_digit(small_mnist.train, seed=1)
  assert scenes.shape == (_SMALL, 60, 60, 1) and scenes.dtype == np.uint8
  np.testing.assert_array_equal(
      scenes, mnist_scenes.two_digit(small_mnist.train, seed=1))
  other_seed = mnist_scenes.two_digit(small_mnist.train, seed=2)
  assert np.mean(np.any(scenes != other_seed, axis=(1, 2, 3))) > 0.95


def test_two_digit_holds_digit_i_and_one_other_whole_digit():
  # Square k has the odd brightness 2k + 1, so a pixel that is odd belongs to
  # one square and names it, and an even one is an overlap (a sum of two).
  values = 2 * np.arange(20) + 1
  scenes = mnist_scenes.two_digit(_square_digits(values), seed=0)[..., 0]
  partner_offsets = set()
  for i, scene in enumerate(scenes):
    own = values[i]
    shown = set(np.unique(scene).tolist()) - {0}
    overlaps = {value for value in shown if value % 2 == 0}
    assert len(overlaps) <= 1
    partner = (overlaps.pop() - own) if overlaps else (shown - {own}).pop()
    overlap = np.sum(scene == own + partner)
    # Both squares are whole: their own pixels plus the shared ones.
    assert np.sum(scene == own) + overlap == 28 * 28
    assert np.sum(scene == partner) + overlap == 28 * 28
    partner_offsets.add((list(values).index(partner) - i) % len(values))
  assert len(partner_offsets) > 5  # partners are random, not i + 1


def test_two_digit_overlap_adds_and_clips_at_full_scale():
  bright = np.full((2, 28, 28, 1), 200, np.uint8)
  scenes = mnist_scenes.two_digit(bright, seed=0, size=30)[..., 0]
  # Two 28x28 squares in a 30x30 canvas always overlap: 200 + 200 clips.
  assert np.all(np.isin(scenes, (0, 200, 255)))
  assert np.all(np.sum(scenes == 255, axis=(1, 2)) >= 26 * 26)


def test_two_digit_real_digits_are_whole_and_add_up(small_mnist):
  digits = small_mnist.train
  scenes = mnist_scenes.two_digit(digits, seed=3)
  for i in range(20):
    assert _holds_whole(scenes[i, ..., 0], digits[i, ..., 0])
  # Two digits carry about twice one digit's ink; clipped overlaps lose a little.
  ratio = _masses(scenes).mean() / _masses(digits).mean()
  assert 1.8 < ratio <= 2.0
  assert np.all(_masses(scenes) >= _masses(digits))


# --- cluttered --------------------------------------------------------------


def test_cluttered_keeps_labels_and_is_deterministic(small_mnist):
  digits, labels = small_mnist.train, small_mnist.train_labels
  scenes, scene_labels = mnist_scenes.cluttered(digits, labels, seed=1)
  assert scenes.shape == (_SMALL, 100, 100, 1) and scenes.dtype == np.uint8
  assert scene_labels.dtype == np.int32
  np.testing.assert_array_equal(scene_labels, labels)
  again, _ = mnist_scenes.cluttered(digits, labels, seed=1)
  np.testing.assert_array_equal(scenes, again)
  other_seed, _ = mnist_scenes.cluttered(digits, labels, seed=2)
  assert np.mean(np.any(scenes != other_seed, axis=(1, 2, 3))) > 0.95


def test_cluttered_holds_the_whole_digit_plus_clutter(small_mnist):
  digits = small_mnist.train
  scenes, _ = mnist_scenes.cluttered(digits, small_mnist.train_labels, seed=4)
  for i in range(20):
    assert _holds_whole(scenes[i, ..., 0], digits[i, ..., 0])
  clutter_mass = _masses(scenes) - _masses(digits)
  assert np.all(clutter_mass >= 0)
  assert np.mean(clutter_mass > 0) > 0.95
  # Eight 8x8 crops of digits carry about one digit's ink in all.
  assert 0.5 < clutter_mass.mean() / _masses(digits).mean() < 1.5


def test_cluttered_pieces_are_crops_of_other_digits():
  # Any two of these add past 255: a clipped overlap is no square's value.
  values = 128 + np.arange(20)
  scenes, _ = mnist_scenes.cluttered(_square_digits(values), np.arange(20),
                                     seed=0, clutter=8, crop=8)
  for i, scene in enumerate(scenes[..., 0]):
    own = np.sum(scene == values[i])
    other = np.sum((scene != 0) & (scene != values[i]))
    # Brighter pieces may cover up to 8 x 64 pixels of the digit's square.
    assert 28 * 28 - 8 * 64 <= own <= 28 * 28
    assert 0 < other <= 8 * 64


def test_clutter_and_digit_add_and_clip_at_full_scale():
  bright = np.full((3, 28, 28, 1), 200, np.uint8)
  scenes, _ = mnist_scenes.cluttered(bright, np.arange(3), seed=0, size=30)
  # In a 30x30 canvas every crop overlaps the digit: 200 + 200 clips.
  assert np.all(np.isin(scenes, (0, 200, 255)))
  assert np.all(np.sum(scenes == 255, axis=(1, 2, 3)) > 0)


def _fresh(build, digits, labels, key=0, **options):
  scenes, scene_labels = jax.jit(functools.partial(build, **options))(
      digits, labels, jnp.arange(len(digits)), jax.random.key(key))
  return np.asarray(scenes), np.asarray(scene_labels)


def test_fresh_cluttered_scenes_match_the_fixed_ones(small_mnist):
  digits, labels = small_mnist.train, small_mnist.train_labels
  fresh, fresh_labels = _fresh(mnist_scenes.fresh_cluttered, digits, labels)
  assert fresh.shape == (_SMALL, 100, 100, 1) and fresh.dtype == np.uint8
  np.testing.assert_array_equal(fresh_labels, labels)
  for i in range(20):
    assert _holds_whole(fresh[i, ..., 0], digits[i, ..., 0])
  fixed, _ = mnist_scenes.cluttered(digits, labels, seed=1)
  # The digit and eight crops, added and clipped: the same ink as the fixed.
  assert 0.9 < _masses(fresh).mean() / _masses(fixed).mean() < 1.1
  np.testing.assert_array_equal(
      fresh, _fresh(mnist_scenes.fresh_cluttered, digits, labels)[0])
  other_key = _fresh(mnist_scenes.fresh_cluttered, digits, labels, key=1)[0]
  assert np.mean(np.any(fresh != other_key, axis=(1, 2, 3))) > 0.95


def test_fresh_clutter_is_crops_of_other_digits():
  values = 128 + np.arange(20)
  scenes, _ = _fresh(mnist_scenes.fresh_cluttered, _square_digits(values),
                     np.arange(20))
  for i, scene in enumerate(scenes[..., 0]):
    own = np.sum(scene == values[i])
    other = np.sum((scene != 0) & (scene != values[i]))
    assert 28 * 28 - 8 * 64 <= own <= 28 * 28
    assert 0 < other <= 8 * 64


def test_fresh_two_digit_scenes_hold_two_whole_digits(small_mnist):
  digits, labels = small_mnist.train, small_mnist.train_labels
  scenes, scene_labels = _fresh(mnist_scenes.fresh_two_digit, digits, labels)
  assert scenes.shape == (_SMALL, 60, 60, 1)
  np.testing.assert_array_equal(scene_labels, labels)
  for i in range(20):
    assert _holds_whole(scenes[i, ..., 0], digits[i, ..., 0])
  assert 1.8 < _masses(scenes).mean() / _masses(digits).mean() <= 2.0


def test_training_batches_are_fresh_scenes_unless_asked_otherwise(data_dir):
  config = settings.parse(cluttered_mnist_cls.get_config(
      f'data.dir="{data_dir}",data.max_examples=64,epochs=0'))
  splits = datasets.load_for_training(config.data)
  assert splits.train.shape == (64, 28, 28, 1)  # the digits, not scenes
  assert splits.valid.shape == (64, 100, 100, 1)
  arrays = dict(images=jnp.asarray(splits.train),
                labels=jnp.asarray(splits.train_labels))
  indices = jnp.arange(8)
  batch = datasets.make_batch(config.data)
  first, labels = batch(arrays, indices, jax.random.key(0))
  second, _ = batch(arrays, indices, jax.random.key(1))
  assert first.shape == (8, 100, 100, 1)
  assert not np.array_equal(first, second)
  np.testing.assert_array_equal(labels, splits.train_labels[:8])
  fixed = dataclasses.replace(config.data, fresh_scenes=False)
  fixed_splits = datasets.load_for_training(fixed)
  assert fixed_splits.train.shape == (64, 100, 100, 1)
  rows, _ = datasets.make_batch(fixed)(
      dict(images=jnp.asarray(fixed_splits.train),
           labels=jnp.asarray(fixed_splits.train_labels)),
      indices, jax.random.key(0))
  np.testing.assert_array_equal(rows, fixed_splits.train[:8])


def test_cluttered_rejects_mismatched_labels(small_mnist):
  with pytest.raises(ValueError, match=r'labels have shape \(3,\)'):
    mnist_scenes.cluttered(small_mnist.train, np.zeros(3), seed=0)


# --- coloured ---------------------------------------------------------------


def test_coloured_is_a_per_image_blend_of_two_colours():
  ramp = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(1, 28, 28, 1)
  digits = np.repeat(ramp, 50, axis=0)
  images = mnist_scenes.coloured(digits, seed=0)
  assert images.shape == (50, 28, 28, 3) and images.dtype == np.uint8
  np.testing.assert_array_equal(images, mnist_scenes.coloured(digits, seed=0))
  assert np.any(images != mnist_scenes.coloured(digits, seed=1))
  flat = images.reshape(50, -1, 3).astype(np.float64)
  intensity = ramp.reshape(-1)
  background = flat[:, intensity == 0].mean(axis=1)  # [50, 3]
  foreground = flat[:, intensity == 255].mean(axis=1)
  assert np.all(foreground > background)  # every channel, every image
  expected = (background[:, None, :] + (foreground - background)[:, None, :]
              * intensity[None, :, None] / 255)
  np.testing.assert_allclose(flat, expected, atol=1.0)
  # Colour, not grey: the channels differ within each image.
  assert np.all(np.ptp(background, axis=1) > 0)
  assert np.all(np.ptp(foreground, axis=1) > 0)


def test_coloured_real_digits_have_distinct_channels(small_mnist):
  images = mnist_scenes.coloured(small_mnist.train, seed=0)
  red, green, blue = (images[..., channel] for channel in range(3))
  assert np.mean(np.any(red != green, axis=(1, 2))) == 1.0
  assert np.mean(np.any(green != blue, axis=(1, 2))) == 1.0


# --- load_splits on the real data -------------------------------------------


def test_mnist_labels_match_the_published_counts(data_dir):
  splits = datasets.load_splits('mnist', data_dir)
  assert all(labels.dtype == np.int32 for labels in splits.labels)
  assert [len(labels) for labels in splits.labels] == [50000, 10000, 10000]
  train_file_labels = np.concatenate([splits.train_labels, splits.valid_labels])
  # Label counts from shared/data/README.md.
  assert list(np.bincount(train_file_labels)) == [
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert list(np.bincount(splits.test_labels)) == [
      980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  assert list(splits.train_labels[:3]) == [5, 0, 4]


def test_max_examples_keeps_the_first_of_each_split(data_dir, small_mnist):
  full = datasets.load_splits('binarized_mnist', data_dir)
  small = datasets.load_splits('binarized_mnist', data_dir, max_examples=7)
  for small_split, full_split in zip(small.images, full.images):
    np.testing.assert_array_equal(small_split, full_split[:7])
  assert small.labels == (None, None, None)
  assert [len(split) for split in small_mnist.images] == [_SMALL] * 3


@pytest.mark.parametrize('name', _SCENE_SETS)
def test_generated_sets_load_from_mnist_with_a_seed_per_split(
    name, data_dir, small_mnist):
  splits = datasets.load_splits(name, data_dir, max_examples=_SMALL)
  shape = datasets.DATASETS[name].shape
  for split in ('train', 'valid', 'test'):
    images = getattr(splits, split)
    labels = getattr(splits, f'{split}_labels')
    digits = getattr(small_mnist, split)
    assert images.shape == (_SMALL, *shape) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, getattr(small_mnist, f'{split}_labels'))
    seed = mnist_scenes.SPLIT_SEEDS[split]
    if name == 'mnist_two_digit':
      expected = mnist_scenes.two_digit(digits, seed)
    elif name == 'cluttered_mnist':
      expected, _ = mnist_scenes.cluttered(digits, labels, seed)
    else:
      expected = mnist_scenes.coloured(digits, seed)
    np.testing.assert_array_equal(images, expected)
  assert len(set(mnist_scenes.SPLIT_SEEDS.values())) == 3


# --- names, shapes, binarization --------------------------------------------


def test_every_known_data_set_has_a_shape_and_a_binarization():
  assert set(datasets.DATASETS) == {
      'binarized_mnist', 'mnist', 'mnist_two_digit', 'cluttered_mnist',
      'coloured_mnist', 'svhn', 'cifar10'}
  defaults = {name: datasets.spec(name).binarization
              for name in tuple(datasets.DATASETS)}
  assert defaults == {
      'binarized_mnist': 'none', 'mnist': 'dynamic', 'mnist_two_digit': 'dynamic',
      'cluttered_mnist': 'intensity', 'coloured_mnist': 'intensity',
      'svhn': 'intensity', 'cifar10': 'intensity'}
  labelled = {name for name, spec in datasets.DATASETS.items() if spec.labelled}
  assert labelled == (
      set(datasets.DATASETS) - {'binarized_mnist', 'mnist_two_digit'})
  assert datasets.DATASETS['cluttered_mnist'].shape == (100, 100, 1)
  assert datasets.DATASETS['cifar10'].shape == (32, 32, 3)


def test_binarize_intensity_is_x_over_255():
  images = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1)
  binarize = jax.jit(input_pipeline.binarize, static_argnames='method')
  result = np.asarray(binarize(images, 'intensity', None))
  assert result.dtype == np.float32
  assert result.min() == 0.0 and result.max() == 1.0
  np.testing.assert_allclose(result, np.arange(256).reshape(1, 16, 16, 1) / 255,
                             rtol=1e-6)


def test_splits_without_labels_still_build_from_three_arrays():
  images = np.zeros((4, 28, 28, 1), np.uint8)
  splits = datasets.Splits(images, images[:2], images[:3])
  assert splits.labels == (None, None, None)
  assert [len(split) for split in splits.first(2).images] == [2, 2, 2]


# --- CIFAR-10 -----------------------------------------------------------------


def test_cifar10_pixels_labels_and_splits_round_trip(tmp_path):
  batches = data_files.write_cifar10_batches(tmp_path / 'cifar10')
  splits = datasets.load_splits('cifar10', str(tmp_path))
  # 5 x 1001 training images: the last 5,000 are valid, 5 remain for train.
  assert [len(split) for split in splits.images] == [5, 5000, 7]
  assert splits.train.shape[1:] == (32, 32, 3) and splits.train.dtype == np.uint8
  first = batches['data_batch_1']
  # Row value at channel c, row r, column x sits at c * 1024 + r * 32 + x.
  rng = np.random.default_rng(0)
  for image, channel, row, col in rng.integers(0, [5, 3, 32, 32], (100, 4)):
    assert (splits.train[image, row, col, channel]
            == first[b'data'][image, channel * 1024 + row * 32 + col])
  test = batches['test_batch']
  np.testing.assert_array_equal(
      splits.test[3, 10, :, 2], test[b'data'][3, 2 * 1024 + 10 * 32:][:32])
  train_labels = np.concatenate(
      [batches[f'data_batch_{number}'][b'labels'] for number in range(1, 6)])
  np.testing.assert_array_equal(splits.train_labels, train_labels[:5])
  np.testing.assert_array_equal(splits.valid_labels, train_labels[5:])
  np.testing.assert_array_equal(splits.test_labels, test[b'labels'])
  assert all(labels.dtype == np.int32 for labels in splits.labels)


def test_cifar10_reads_the_tar_gz_archive_itself(tmp_path):
  unpacked = tmp_path / 'unpacked'
  data_files.write_cifar10_batches(unpacked)
  with tarfile.open(tmp_path / 'cifar-10-python.tar.gz', 'w:gz',
                    compresslevel=1) as tar:
    tar.add(unpacked / 'cifar-10-batches-py', arcname='cifar-10-batches-py')
  from_archive = dataset_files.cifar10(str(tmp_path))
  from_folder = dataset_files.cifar10(str(unpacked))
  for archived, unpacked_split in zip(from_archive, from_folder):
    np.testing.assert_array_equal(archived, unpacked_split)


def test_cifar10_missing_names_the_files_and_url(tmp_path):
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('cifar10', str(tmp_path))
  message = str(error.value)
  assert str(tmp_path / 'cifar10' / 'cifar-10-batches-py' / 'data_batch_1') in message
  assert 'cifar-10-python.tar.gz' in message
  assert 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz' in message
  assert '\n' not in message


def test_cifar10_missing_batch_is_named(tmp_path):
  data_files.write_cifar10_batches(tmp_path)
  os.remove(tmp_path / 'cifar-10-batches-py' / 'data_batch_4')
  with pytest.raises(datasets.DataError,
                     match=r'data_batch_4: not found, although the folder'):
    datasets.load_splits('cifar10', str(tmp_path))


def test_cifar10_corrupt_batch_is_named(tmp_path):
  data_files.write_cifar10_batches(tmp_path)
  path = tmp_path / 'cifar-10-batches-py' / 'data_batch_3'
  path.write_bytes(path.read_bytes()[:1000])
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('cifar10', str(tmp_path))
  assert str(path) in str(error.value) and 'cannot unpickle' in str(error.value)


def test_cifar10_wrong_row_length_is_named(tmp_path):
  data_files.write_cifar10_batches(tmp_path)
  path = tmp_path / 'cifar-10-batches-py' / 'test_batch'
  path.write_bytes(pickle.dumps(
      {b'data': np.zeros((7, 3000), np.uint8), b'labels': [0] * 7}))
  with pytest.raises(datasets.DataError,
                     match=r"test_batch: b'data' is uint8 with shape \(7, 3000\)"):
    datasets.load_splits('cifar10', str(tmp_path))


def test_cifar10_pickle_that_imports_code_is_refused(tmp_path):
  data_files.write_cifar10_batches(tmp_path)
  path = tmp_path / 'cifar-10-batches-py' / 'data_batch_1'
  path.write_bytes(pickle.dumps({b'data': os.getcwd, b'labels': []}))
  with pytest.raises(datasets.DataError,
                     match=r'data_batch_1: cannot unpickle .*refuses to load'):
    datasets.load_splits('cifar10', str(tmp_path))


# --- SVHN ---------------------------------------------------------------------


def test_svhn_pixels_labels_and_splits_round_trip(tmp_path):
  written = data_files.write_svhn_mat_files(tmp_path / 'svhn')
  splits = datasets.load_splits('svhn', str(tmp_path))
  assert [len(split) for split in splits.images] == [3, 5000, 4]
  assert splits.test.shape == (4, 32, 32, 3) and splits.test.dtype == np.uint8
  train_pixels, train_labels = written['train_32x32.mat']
  test_pixels, test_labels = written['test_32x32.mat']
  # X[row, col, channel, i] is image i's pixel.
  assert splits.train[2, 5, 9, 1] == train_pixels[5, 9, 1, 2]
  assert splits.valid[0, 31, 0, 2] == train_pixels[31, 0, 2, 3]
  np.testing.assert_array_equal(splits.test, test_pixels.transpose(3, 0, 1, 2))
  assert splits.train_labels[0] == 0  # written as 10
  np.testing.assert_array_equal(splits.train_labels, train_labels[:3, 0] % 10)
  np.testing.assert_array_equal(splits.valid_labels, train_labels[3:, 0] % 10)
  np.testing.assert_array_equal(splits.test_labels, test_labels[:, 0] % 10)
  assert splits.train_labels.dtype == np.int32
  assert set(np.unique(splits.valid_labels)) == set(range(10))


def test_svhn_at_top_level_with_max_examples(tmp_path):
  data_files.write_svhn_mat_files(tmp_path)
  splits = datasets.load_splits('svhn', str(tmp_path), max_examples=2)
  assert [split.shape for split in splits.images] == [(2, 32, 32, 3)] * 3
  assert [len(labels) for labels in splits.labels] == [2, 2, 2]


def test_svhn_missing_names_the_file_and_url(tmp_path):
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('svhn', str(tmp_path))
  message = str(error.value)
  assert str(tmp_path / 'svhn' / 'train_32x32.mat') in message
  assert 'test_32x32.mat' in message
  assert 'http://ufldl.stanford.edu/housenumbers/' in message
  assert '\n' not in message


def test_svhn_corrupt_file_is_named(tmp_path):
  data_files.write_svhn_mat_files(tmp_path, train_count=5001)
  path = tmp_path / 'test_32x32.mat'
  path.write_bytes(path.read_bytes()[:300])
  with pytest.raises(datasets.DataError) as error:
    datasets.load_splits('svhn', str(tmp_path))
  assert str(path) in str(error.value)
  assert 'cannot read as a MATLAB .mat file' in str(error.value)


def test_svhn_bad_label_and_missing_variable_are_named(tmp_path):
  data_files.write_svhn_mat_files(tmp_path, train_count=5001)
  path = tmp_path / 'test_32x32.mat'
  pixels = np.zeros((32, 32, 3, 2), np.uint8)
  scipy.io.savemat(path, {'X': pixels, 'y': np.array([[3], [11]], np.uint8)})
  with pytest.raises(datasets.DataError,
                     match=r'test_32x32\.mat: y holds 11; expected whole '
                           r'numbers 1\.\.10'):
    datasets.load_splits('svhn', str(tmp_path))
  scipy.io.savemat(path, {'X': pixels})
  with pytest.raises(datasets.DataError,
                     match=r'test_32x32\.mat: has no variable y'):
    datasets.load_splits('svhn', str(tmp_path))


def test_too_few_training_images_for_the_validation_split(tmp_path):
  data_files.write_svhn_mat_files(tmp_path, train_count=20)
  with pytest.raises(datasets.DataError,
                     match=r'train_32x32\.mat: holds 20 training images; '
                           r'expected more than 5000'):
    datasets.load_splits('svhn', str(tmp_path))
