"""Tests for draw_jax.visualize: grid layout, box geometry, GIF and PNG."""

import imageio.v3 as iio
import numpy as np
import pytest

from draw_jax import visualize
from draw_jax.attention import AttentionParams

RED = np.array(visualize.WRITE_COLOUR, np.uint8)
GREEN = np.array(visualize.READ_COLOUR, np.uint8)


def _params(center_x, center_y, stride, sigma2=1.0, gamma=1.0):
  fields = np.broadcast_arrays(*(np.asarray(v, np.float32) for v in
                                 (center_x, center_y, sigma2, stride, gamma)))
  return AttentionParams(*fields)


def _border_params(size, shape=()):
  """N = size, stride 1, centred: the filter centres span the whole image."""
  centre = np.full(shape, (size + 1) / 2.0)
  return _params(centre, centre, np.ones(shape))


def _coloured(image, colour):
  return np.all(image == colour, axis=-1)


# ---- sample_grid -------------------------------------------------------------


def test_sample_grid_grey_square():
  grid = visualize.sample_grid(np.zeros((4, 5, 6, 1)), padding=1)
  assert grid.shape == (2 * 5 + 1, 2 * 6 + 1, 3)
  assert grid.dtype == np.uint8


def test_sample_grid_rgb_not_square_keeps_each_images_colour():
  n, height, width = 5, 4, 3
  colours = np.linspace(0.0, 1.0, n * 3).reshape(n, 1, 1, 3)
  images = np.broadcast_to(colours, (n, height, width, 3))
  grid = visualize.sample_grid(images, padding=2)
  # cols = ceil(sqrt(5)) = 3, rows = ceil(5 / 3) = 2.
  assert grid.shape == (2 * height + 2, 3 * width + 2 * 2, 3)
  for k in range(n):
    row, col = divmod(k, 3)
    top, left = row * (height + 2), col * (width + 2)
    cell = grid[top:top + height, left:left + width]
    expected = np.round(colours[k, 0, 0] * 255).astype(np.uint8)
    assert np.all(cell == expected)


def test_sample_grid_all_ones_is_white_in_cells_and_grey_elsewhere():
  height, width = 3, 4
  grid = visualize.sample_grid(np.ones((3, height, width, 1)), padding=1)
  assert grid.shape == (2 * height + 1, 2 * width + 1, 3)
  in_cell = np.zeros(grid.shape[:2], bool)
  for k in range(3):
    row, col = divmod(k, 2)
    in_cell[row * (height + 1):row * (height + 1) + height,
            col * (width + 1):col * (width + 1) + width] = True
  assert np.all(grid[in_cell] == 255)
  # Separators and the empty fourth cell.
  assert np.all(grid[~in_cell] == visualize.SEPARATOR_VALUE)


def test_sample_grid_clips_out_of_range_and_replicates_grey():
  images = np.array([-0.5, 0.5, 1.5]).reshape(3, 1, 1, 1)
  grid = visualize.sample_grid(images, padding=0)
  assert grid.shape == (2, 2, 3)  # 2 rows x 2 cols of 1x1 cells
  assert np.all(grid[0, 0] == 0)
  assert np.all(grid[0, 1] == 128)
  assert np.all(grid[1, 0] == 255)


def test_sample_grid_single_image_has_no_padding():
  grid = visualize.sample_grid(np.full((1, 7, 5, 3), 0.25))
  assert grid.shape == (7, 5, 3)
  assert np.all(grid == 64)


def test_sample_grid_rejects_other_channel_counts():
  with pytest.raises(ValueError):
    visualize.sample_grid(np.zeros((2, 4, 4, 2)))


# ---- evolution_grid ----------------------------------------------------------


def test_evolution_grid_rows_are_samples_and_columns_are_steps():
  num_steps, n, height, width = 7, 3, 4, 5
  values = np.arange(num_steps * n).reshape(num_steps, n) / (num_steps * n)
  canvases = np.broadcast_to(values[:, :, None, None, None],
                             (num_steps, n, height, width, 1))
  steps = [0, 3, 6]
  grid = visualize.evolution_grid(canvases, steps=steps, padding=1)
  assert grid.shape == (n * (height + 1) - 1, 3 * (width + 1) - 1, 3)
  for sample in range(n):
    for column, step in enumerate(steps):
      pixel = grid[sample * (height + 1), column * (width + 1)]
      assert np.all(pixel == np.round(values[step, sample] * 255))


def test_evolution_grid_default_steps_end_at_last_step():
  np.testing.assert_array_equal(visualize.default_evolution_steps(3), [0, 1, 2])
  steps = visualize.default_evolution_steps(64)
  assert len(steps) == 10 and steps[0] == 0 and steps[-1] == 63
  assert np.all(np.diff(steps) > 0)
  canvases = np.zeros((64, 2, 3, 3, 1))
  canvases[-1] = 1.0
  grid = visualize.evolution_grid(canvases)
  assert grid.shape == (2 * 4 - 1, 10 * 4 - 1, 3)
  assert np.all(grid[:3, -3:] == 255)  # last column shows step T-1
  assert np.all(grid[:3, -7:-4] == 0)


# ---- attention_box -----------------------------------------------------------


@pytest.mark.parametrize('size', [5, 6, 28])
def test_attention_box_spans_image_when_centred_with_n_equal_size(size):
  box = visualize.attention_box(_border_params(size), glimpse=size)
  np.testing.assert_allclose(box, (0.0, 0.0, size - 1.0, size - 1.0))


def test_attention_box_off_centre_by_hand():
  # N = 3, stride 2: centres at g - 2, g, g + 2 (1-based), then minus 1.
  params = _params(center_x=10.0, center_y=4.0, stride=2.0)
  box = visualize.attention_box(params, glimpse=3)
  np.testing.assert_allclose(box, (1.0, 7.0, 5.0, 11.0))


def test_attention_box_agrees_with_filter_centres_for_arrays():
  from draw_jax.attention import filter_centres
  rng = np.random.default_rng(0)
  params = _params(rng.uniform(1, 28, (3, 2)), rng.uniform(1, 28, (3, 2)),
                   rng.uniform(0.5, 4, (3, 2)))
  top, left, bottom, right = visualize.attention_box(params, glimpse=5)
  assert top.shape == (3, 2)
  mu_x = np.asarray(filter_centres(params.center_x[1, 0], params.stride[1, 0],
                                   5))
  np.testing.assert_allclose([left[1, 0], right[1, 0]],
                             [mu_x[0] - 1, mu_x[-1] - 1], rtol=1e-5)


# ---- draw_boxes --------------------------------------------------------------


def test_border_box_lands_on_upscaled_image_border():
  size, upscale = 6, 4
  frame = np.zeros((size * upscale, size * upscale, 3), np.uint8)
  box = visualize.attention_box(_border_params(size), glimpse=size)
  drawn = visualize.draw_boxes(frame, box, visualize.WRITE_COLOUR, upscale)
  expected = np.zeros(frame.shape[:2], bool)
  expected[[0, -1], :] = True
  expected[:, [0, -1]] = True
  np.testing.assert_array_equal(_coloured(drawn, RED), expected)
  assert np.all(drawn[~expected] == 0)
  assert np.all(frame == 0)  # the input is not modified


def test_off_centre_box_outlines_the_covered_upscaled_pixels():
  upscale = 2
  frame = np.zeros((8 * upscale, 14 * upscale, 3), np.uint8)
  drawn = visualize.draw_boxes(frame, (1.0, 7.0, 5.0, 11.0), (0, 255, 0),
                               upscale)
  # Original rows 1..5 -> upscaled rows 2..11; cols 7..11 -> 14..23.
  rows, cols = np.nonzero(_coloured(drawn, GREEN))
  assert rows.min() == 2 and rows.max() == 11
  assert cols.min() == 14 and cols.max() == 23
  outline = (np.isin(rows, [2, 11]) | np.isin(cols, [14, 23]))
  assert np.all(outline)
  assert len(rows) == 2 * 10 + 2 * 10 - 4


def test_boxes_are_clipped_and_nan_boxes_skipped():
  frames = np.zeros((3, 8, 8, 3), np.uint8)
  boxes = (np.array([-10.0, 20.0, np.nan]), np.array([1.0, 20.0, 0.0]),
           np.array([2.0, 30.0, 3.0]), np.array([2.0, 30.0, 3.0]))
  drawn = visualize.draw_boxes(frames, boxes, visualize.WRITE_COLOUR, 2)
  # Box 0: top edge off the image; bottom edge (row 5) and sides drawn.
  rows, cols = np.nonzero(_coloured(drawn[0], RED))
  assert rows.min() == 0 and rows.max() == 5
  assert set(cols) == {2, 3, 4, 5}
  assert not drawn[1].any()  # wholly off the image
  assert not drawn[2].any()  # NaN


# ---- canvas_frames and the GIF ---------------------------------------------


def _canvas_case(num_steps=4, n=3, size=5):
  values = (np.arange(num_steps) + 1.0) / (num_steps + 1)
  canvases = np.broadcast_to(values[:, None, None, None, None],
                             (num_steps, n, size, size, 1))
  write = _border_params(size, (num_steps, n))
  read = _params(np.full((num_steps, n), 3.0), np.full((num_steps, n), 3.0),
                 np.ones((num_steps, n)))
  return canvases, write, read


def test_canvas_frames_draw_each_cells_boxes_at_its_offset():
  size, upscale, n = 5, 3, 3
  canvases, write, read = _canvas_case(n=n, size=size)
  frames = visualize.canvas_frames(canvases, write, read, write_n=size,
                                   read_n=1, upscale=upscale)
  cell = size * upscale
  assert len(frames) == 4
  assert frames[0].shape == (2 * cell + 1, 2 * cell + 1, 3)
  for k in range(n):
    row, col = divmod(k, 2)
    top, left = row * (cell + 1), col * (cell + 1)
    red = _coloured(frames[2][top:top + cell, left:left + cell], RED)
    expected = np.zeros((cell, cell), bool)
    expected[[0, -1], :] = expected[:, [0, -1]] = True
    np.testing.assert_array_equal(red, expected)
    # read_n = 1 at centre pixel 2 (0-based): the upscaled pixel's outline.
    green_rows, green_cols = np.nonzero(
        _coloured(frames[2][top:top + cell, left:left + cell], GREEN))
    assert set(green_rows) == set(green_cols) == {6, 7, 8}
    assert len(green_rows) == 8
  # The empty fourth cell gets no box.
  assert not _coloured(frames[2][cell + 1:, cell + 1:], RED).any()


def test_canvas_frames_without_boxes_or_params_are_grey():
  canvases, write, _ = _canvas_case()
  for frames in (visualize.canvas_frames(canvases, write, write_n=5,
                                         show_boxes=False),
                 visualize.canvas_frames(canvases)):
    for frame in frames:
      assert np.all(frame[..., 0] == frame[..., 1])
      assert np.all(frame[..., 1] == frame[..., 2])


def test_canvas_frames_need_glimpse_size_for_boxes():
  canvases, write, _ = _canvas_case()
  with pytest.raises(ValueError):
    visualize.canvas_frames(canvases, write)


def test_gif_decodes_with_all_frames_and_holds_the_last(tmp_path):
  num_steps, hold, size, upscale = 4, 5, 5, 2
  canvases, write, read = _canvas_case(num_steps=num_steps, size=size)
  path = visualize.save_canvas_gif(
      str(tmp_path / 'canvas.gif'), canvases, write, read, write_n=size,
      read_n=1, upscale=upscale, frame_duration=0.1, hold_frames=hold)
  decoded = iio.imread(path, index=None)
  cell = size * upscale
  # Pillow stores the hold as a longer last frame rather than repeated frames.
  assert decoded.shape == (num_steps, 2 * cell + 1, 2 * cell + 1, 3)
  durations = [iio.immeta(path, index=i)['duration'] for i in range(num_steps)]
  assert durations == [100] * (num_steps - 1) + [100 * (1 + hold)]
  assert sum(durations) == 100 * (num_steps + hold)
  assert iio.immeta(path, index=0)['loop'] == 0
  expected = visualize.canvas_frames(canvases, write, read, write_n=size,
                                     read_n=1, upscale=upscale)
  # Few colours, so the GIF palette holds them exactly.
  np.testing.assert_array_equal(decoded, np.stack(expected))


# ---- filterbank_image and PNG ----------------------------------------------


def test_filterbank_image_shape_and_peaks_at_filter_centres():
  height, width, glimpse = 9, 11, 3
  params = _params(center_x=6.0, center_y=5.0, stride=3.0, sigma2=0.5)
  image = visualize.filterbank_image(params, height, width, glimpse,
                                     upscale=2)
  assert image.shape == (3 * (2 * height + 1) - 1, 3 * (2 * width + 1) - 1, 3)
  plain = visualize.filterbank_image(params, height, width, glimpse, upscale=1)
  # 1-based centres: y = 2, 5, 8 and x = 3, 6, 9.
  for i, mu_y in enumerate([2, 5, 8]):
    for j, mu_x in enumerate([3, 6, 9]):
      cell = plain[i * (height + 1):i * (height + 1) + height,
                   j * (width + 1):j * (width + 1) + width, 0]
      assert cell.max() == 255
      assert np.unravel_index(cell.argmax(), cell.shape) == (mu_y - 1, mu_x - 1)


def test_save_png_round_trips(tmp_path):
  image = visualize.sample_grid(np.random.default_rng(0).uniform(
      size=(5, 4, 4, 3)))
  path = visualize.save_png(str(tmp_path / 'grid.png'), image)
  np.testing.assert_array_equal(iio.imread(path), image)
