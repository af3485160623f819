"""scripts/two_digit_attention.py: placing each write at the nearer digit.

The end-to-end run on a trained checkpoint is in experiments_test.py.
"""
import numpy as np
import pytest

from draw_jax import mnist_scenes
import script_modules

analysis = script_modules.load('two_digit_attention')
FIRST, SECOND, NEITHER = analysis.FIRST, analysis.SECOND, analysis.NEITHER


def test_layout_corners_are_where_two_digit_pastes_the_digits():
  # Digit k is a solid square of brightness k + 1.
  values = np.arange(1, 41, dtype=np.uint8)
  digits = np.broadcast_to(values[:, None, None, None], (40, 28, 28, 1))
  scenes = mnist_scenes.two_digit(digits, seed=5)[..., 0]
  partners, corners = mnist_scenes.two_digit_layout(40, seed=5)
  for i in range(40):
    for (row, col), value in zip(corners[i], (values[i], values[partners[i]])):
      block = scenes[i, row:row + 28, col:col + 28]
      # Where the other square overlaps, the two brightnesses add.
      assert np.all((block == value) | (block == values[i] + values[
          partners[i]]))
      assert np.any(block == value)


def test_digit_centres_are_in_one_based_pixel_units():
  corners = np.array([[[0, 0], [32, 10]]])
  # Pixels 1..28 (1-based) have their middle at 14.5.
  assert analysis.digit_centres(corners).tolist() == [[[14.5, 14.5],
                                                       [46.5, 24.5]]]


def test_digits_apart_by_the_distance_of_their_centres():
  corners = np.array([[[0, 0], [20, 0]],    # 20 apart
                      [[0, 0], [12, 15]],   # 19.2 apart
                      [[0, 0], [0, 0]]])    # on top of each other
  assert analysis.digits_apart(corners).tolist() == [True, False, False]


def test_nearest_digit_within_half_a_digit_of_its_centre():
  corners = np.array([[[0, 0], [30, 30]]])  # centres (14.5, 14.5), (44.5, 44.5)
  # Write centres (gx, gy): on digit 1; 14 px right of it (the radius);
  # 14 px right and 14 down (19.8 px, outside both); on digit 2.
  center_x = np.array([[14.5], [28.5], [28.5], [44.0]])
  center_y = np.array([[14.5], [14.5], [28.5], [44.0]])
  where = analysis.nearest_digit(center_x, center_y, corners)
  assert where[:, 0].tolist() == [FIRST, FIRST, NEITHER, SECOND]


def test_moves_count_changes_of_digit_and_skip_steps_between_them():
  where = np.array([[FIRST, FIRST, FIRST],
                    [NEITHER, SECOND, FIRST],
                    [SECOND, FIRST, FIRST],
                    [SECOND, SECOND, NEITHER]])
  assert analysis.moves_between_digits(where).tolist() == [1, 3, 0]


def test_summary_shares_and_visits():
  where = np.array([[FIRST, FIRST],
                    [SECOND, NEITHER]])
  change = np.array([[1.0, 2.0],
                     [3.0, 4.0]])
  result = analysis.summarise(where, change)
  assert result['scenes'] == 2
  assert result['both_digits_visited'] == 0.5
  assert result['mean_moves_between_digits'] == 0.5
  assert result['canvas_change_share'] == pytest.approx(
      dict(first=0.3, second=0.3, neither=0.4))
  assert result['step_share'] == pytest.approx(
      dict(first=0.5, second=0.25, neither=0.25))


def test_canvas_change_starts_from_a_zero_canvas():
  logits = np.array([1.0, 3.0, 2.0]).reshape(3, 1, 1, 1, 1)
  assert analysis.canvas_change(logits)[:, 0].tolist() == [1.0, 2.0, 1.0]
