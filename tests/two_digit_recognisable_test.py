"""scripts/two_digit_recognisable.py: finding two digits and reading them."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mnist_two_digit
from draw_jax import datasets
from draw_jax import mnist_scenes
import runs
import script_modules
from conftest import REPO_ROOT

recognisable = script_modules.load('two_digit_recognisable')
two_digit_attention = recognisable.two_digit_attention

_DIGITS = 5000  # MNIST digits the classifier of the tests learns from
_SCENES = 400


def _squares(corners, sides, size=60):
  """[n, size, size] canvases of solid squares: corners [n, k, 2], sides [k]."""
  canvases = np.zeros((len(corners), size, size))
  for canvas, places in zip(canvases, corners):
    for (row, col), side in zip(places, sides):
      canvas[row:row + side, col:col + side] = 1.0
  return canvases


def test_ink_windows_centre_each_of_two_squares():
  corners = np.array([[[2, 3], [35, 30]],
                      [[30, 0], [0, 40]],
                      [[40, 40], [5, 10]]])
  centres, windows = recognisable.ink_windows(_squares(corners, (14, 10)))
  # A square with top-left pixel (r, c), 0-based, of side s has its centre
  # at r + 1 + (s - 1) / 2 in the write windows' 1-based coordinates.
  expected = corners + 1 + (np.array([14, 10])[:, None] - 1) / 2
  for found, known in zip(centres, expected):
    assert sorted(map(tuple, found)) == pytest.approx(
        sorted(map(tuple, known)))
  # Scene 0: the 14-pixel square at (2, 3) would be centred by a window at
  # (-5, -4), clipped to (0, 0); the 10-pixel one at (35, 30) by (26, 21).
  assert sorted(map(tuple, windows[0])) == [(0, 0), (26, 21)]
  # Scene 2: the 14-pixel square at (40, 40): clipped to (32, 32); the
  # 10-pixel square at (5, 10): (-4, 1), clipped to (0, 1).
  assert sorted(map(tuple, windows[2])) == [(0, 1), (32, 32)]


def test_ink_windows_find_the_digits_of_scenes_whose_digits_are_apart():
  values = np.zeros((40, 28, 28, 1), np.uint8)
  values[:, 4:24, 4:24] = 255  # a 20x20 blob centred as MNIST centres digits
  scenes = mnist_scenes.two_digit(values, seed=7)[..., 0] / 255.0
  _, corners = mnist_scenes.two_digit_layout(40, seed=7)
  apart = two_digit_attention.digits_apart(corners)
  _, windows = recognisable.ink_windows(scenes[apart])
  error = np.abs(windows[:, :, None] - corners[apart][:, None]).max(-1)
  matched = np.minimum(np.maximum(error[:, 0, 0], error[:, 1, 1]),
                       np.maximum(error[:, 0, 1], error[:, 1, 0]))
  assert apart.sum() >= 10
  assert np.all(matched <= 1)


def test_two_means_ignores_weightless_points_and_groups_agree_either_way():
  points = np.array([[[10.0, 10.0], [12.0, 10.0], [50.0, 40.0],
                      [52.0, 44.0], [30.0, 30.0]]])
  weights = np.array([[1.0, 3.0, 1.0, 1.0, 0.0]])
  groups = recognisable.two_means(points, weights)
  assert sorted(map(tuple, groups[0])) == [(11.5, 10.0), (51.0, 42.0)]
  ink = np.array([[[50.0, 40.0], [12.0, 12.0]]])
  assert recognisable.groups_agree(groups, ink).tolist() == [True]
  assert recognisable.groups_agree(groups, ink[:, ::-1]).tolist() == [True]
  # Both write groups near one ink centre: the other digit was not written.
  assert not recognisable.groups_agree(groups, np.array(
      [[[50.0, 40.0], [50.0, 20.0]]]))[0]


def test_summarise_counts_crops_above_the_threshold():
  confidence = np.array([[0.95, 0.99], [0.95, 0.5], [0.9, 0.2]])
  assert recognisable.summarise(confidence, 0.9) == pytest.approx(dict(
      both_confident_share=1 / 3, one_confident_share=2 / 3,
      mean_confidence=np.mean(confidence)))


@pytest.fixture(scope='module')
def classifier(data_dir):
  mnist = datasets.load_splits('mnist', data_dir, _DIGITS,
                               only=('train', 'test'))
  model = recognisable.train_classifier(mnist.train, mnist.train_labels)
  _, labels = recognisable.classify(model, mnist.test[..., 0] / 255.0)
  return model, np.mean(labels == mnist.test_labels)


def test_classifier_reads_mnist_test_digits(classifier):
  assert classifier[1] > 0.9


def test_real_scenes_are_recognisable_and_noise_is_not(classifier, data_dir):
  model, _ = classifier
  test = datasets.load_splits('mnist_two_digit', data_dir, _SCENES,
                              only=('test',))
  _, corners = mnist_scenes.two_digit_layout(
      _SCENES, mnist_scenes.SPLIT_SEEDS['test'])
  apart = two_digit_attention.digits_apart(corners)
  _, confidence, labels = recognisable.read_crops(model,
                                                  test.test[..., 0] / 255.0)
  real = recognisable.summarise(confidence, 0.9)
  clear = recognisable.summarise(confidence[apart], 0.9)
  # The scene's labelled digit is one of the two read, where it stands clear.
  named = np.any(labels == test.test_labels[:, None], axis=1)
  assert named[apart].mean() > 0.8
  # This classifier, from 5,000 digits, reads 90% of the test digits and
  # finds both digits confidently in 16% of the scenes, 35% of those whose
  # digits are apart; the script's, from 50,000, in 47% and 78%.
  assert clear['both_confident_share'] > 0.25
  assert real['both_confident_share'] > 0.1
  assert real['one_confident_share'] > 0.5
  rng = np.random.default_rng(0)
  for fake in (np.zeros((50, 60, 60)), np.full((50, 60, 60), 0.5),
               rng.uniform(size=(50, 60, 60)),
               rng.uniform(size=(50, 60, 60)) < 0.2):
    figures = recognisable.summarise(
        recognisable.read_crops(model, fake.astype(np.float32))[1], 0.9)
    assert figures['one_confident_share'] < 0.05
    assert figures['mean_confidence'] < 0.2


def test_not_digits_and_neighbours_stay_images_in_0_1():
  key = jax.random.key(0)
  digits = jax.random.uniform(key, (12, 28, 28)) < 0.3
  for make in (recognisable.not_digits, recognisable.with_neighbour):
    images = make(digits.astype(jnp.float32), jax.random.key(1))
    assert images.shape == (12, 28, 28)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
  # The digit's own pixels stay; a neighbour 12 to 28 pixels away in each
  # direction overlaps a 20x20 digit's box in (12 / 17)^2 = half the cases.
  squares = jnp.zeros((64, 28, 28)).at[:, 4:24, 4:24].set(1.0)
  added = recognisable.with_neighbour(squares, jax.random.key(2))
  assert jnp.all(added >= squares)
  gained = np.asarray((added - squares).sum((1, 2)) > 0)
  assert 0.3 < gained.mean() < 0.7


def test_the_script_reads_a_tiny_two_digit_run(tmp_path, data_dir):
  config = mnist_two_digit.get_config()
  config.data.dir = str(data_dir)
  config.data.max_examples = 64
  config.model.update(T=3, enc_size=32, dec_size=32, z_size=8, read_n=4,
                      write_n=6)
  config.train.update(batch_size=16, num_steps=4, num_epochs=0,
                      warmup_steps=0, checkpoint_every=4, eval_every=4)
  config.eval.update(batch_size=32, iw_samples=0)
  config.sample.update(num_samples=4, outputs='grid')
  runs.train(config, str(tmp_path))
  completed = subprocess.run(
      [sys.executable, 'scripts/two_digit_recognisable.py',
       '--config=configs/mnist_two_digit.py',
       f'--config.data.dir={data_dir}', '--config.data.max_examples=64',
       f'--workdir={tmp_path}', '--samples=10', '--classifier_digits=500',
       '--threshold=0.5'],
      cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300)
  assert completed.returncode == 0, completed.stderr[-3000:]
  lines = completed.stdout.strip().splitlines()
  assert lines[0].startswith('classifier: ')
  result = json.loads(lines[-1])
  assert result['samples'] == 10 and result['step'] == 4
  assert result['real_scenes'] == 10 and result['threshold'] == 0.5
  for name in ('both_confident_share', 'one_confident_share',
               'real_scenes_both_confident_share', 'write_rule_agreement'):
    assert 0.0 <= result[name] <= 1.0
  # Four steps of training draw grey canvases, which are no digits.
  assert result['one_confident_share'] == 0.0
  assert result['mean_confidence'] < 0.1
  assert result['real_scenes_mean_confidence'] > result['mean_confidence']
  # 30 steps on 500 digits read two thirds of the test digits; chance, 10%.
  assert result['classifier_test_accuracy'] > 0.5
