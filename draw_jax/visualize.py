"""Images and animations of DRAW's canvases and attention windows, in numpy.

Inputs may be numpy or jax arrays; images are [..., H, W, C] probabilities in
[0, 1] with C = 1 or 3. Every output image is uint8 RGB [h, w, 3], grey
replicated to three channels so that attention boxes can be coloured.
Box coordinates are 0-based pixel centres: pixel (row, col) of the original
image spans [row - 0.5, row + 0.5] x [col - 0.5, col + 0.5].
"""
import math

import imageio.v3 as iio
import numpy as np

from draw_jax import attention

# Mid-grey keeps cell borders visible against both black backgrounds (MNIST)
# and white strokes.
SEPARATOR_VALUE = 128
WRITE_COLOUR = (255, 0, 0)
READ_COLOUR = (0, 255, 0)
DEFAULT_EVOLUTION_COLUMNS = 10


def _to_rgb_uint8(images):
  """[..., H, W, C] probabilities -> [..., H, W, 3] uint8."""
  images = np.asarray(images, dtype=np.float32)
  channels = images.shape[-1]
  if channels not in (1, 3):
    raise ValueError(f'images need 1 or 3 channels, got shape {images.shape}')
  # A diverged model's NaNs show as black rather than as undefined uint8 casts.
  images = np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0)
  pixels = np.round(images * 255.0).astype(np.uint8)
  return np.repeat(pixels, 3, axis=-1) if channels == 1 else pixels


def _upscale(images, upscale):
  """Nearest-neighbour enlargement of the H and W axes of [..., H, W, C]."""
  return np.repeat(np.repeat(images, upscale, axis=-3), upscale, axis=-2)


def _tile(cells, rows, cols, padding):
  """Lays out uint8 cells [n, h, w, 3] row-major in a rows x cols grid."""
  n, height, width, _ = cells.shape
  background = np.full((rows * cols - n, height, width, 3), SEPARATOR_VALUE,
                       np.uint8)
  cells = np.concatenate([cells, background], axis=0)
  # Each cell carries its separator on the bottom and right; the last row's
  # and column's separators are cropped off at the end.
  cells = np.pad(cells, ((0, 0), (0, padding), (0, padding), (0, 0)),
                 constant_values=SEPARATOR_VALUE)
  cell_h, cell_w = height + padding, width + padding
  grid = cells.reshape(rows, cols, cell_h, cell_w, 3).transpose(0, 2, 1, 3, 4)
  grid = grid.reshape(rows * cell_h, cols * cell_w, 3)
  return grid[:rows * cell_h - padding, :cols * cell_w - padding]


def _grid_shape(n):
  """(rows, cols) with cols = ceil(sqrt(n)) and rows = ceil(n / cols)."""
  cols = math.isqrt(n - 1) + 1
  return -(-n // cols), cols


def sample_grid(images, padding=1):
  """A square-ish uint8 grid of n >= 1 images [n, H, W, C]."""
  cells = _to_rgb_uint8(images)
  rows, cols = _grid_shape(cells.shape[0])
  return _tile(cells, rows, cols, padding)


def default_evolution_steps(num_steps, columns=DEFAULT_EVOLUTION_COLUMNS):
  """Up to `columns` evenly spaced steps from 0 to num_steps - 1, distinct."""
  columns = min(columns, num_steps)
  # With columns <= num_steps the spacing is >= 1, so rounding keeps them apart.
  return np.round(np.linspace(0, num_steps - 1, columns)).astype(int)


def evolution_grid(canvases_per_step, steps=None, padding=1):
  """One row per sample, one column per chosen step, of [T, n, H, W, C]."""
  canvases = np.asarray(canvases_per_step)
  if steps is None:
    steps = default_evolution_steps(canvases.shape[0])
  chosen = canvases[np.asarray(steps, dtype=int)]  # [S, n, H, W, C]
  num_steps, n = chosen.shape[:2]
  by_sample = np.swapaxes(chosen, 0, 1).reshape((n * num_steps,) +
                                                chosen.shape[2:])
  return _tile(_to_rgb_uint8(by_sample), n, num_steps, padding)


def attention_box(params, glimpse):
  """(top, left, bottom, right), 0-based, spanned by the N filter centres."""
  center_x = np.asarray(params.center_x, dtype=np.float64)
  center_y = np.asarray(params.center_y, dtype=np.float64)
  # Eq. (19)-(20): the outermost centres sit (N-1)/2 strides from g.
  half_span = (glimpse - 1) / 2.0 * np.asarray(params.stride, dtype=np.float64)
  # The params use the paper's 1-based pixels; subtracting 1 makes them 0-based.
  return (center_y - half_span - 1.0, center_x - half_span - 1.0,
          center_y + half_span - 1.0, center_x + half_span - 1.0)


def draw_boxes(frames_rgb, boxes, colour, upscale):
  """Outlines boxes on upscaled uint8 frames [..., h*u, w*u, 3]; returns a copy.

  `boxes` is (top, left, bottom, right) in original-image pixels, each
  broadcastable to the frames' leading axes. The outline hugs the outer edge of
  the upscaled pixels the box covers and is clipped to the frame; boxes with
  NaN coordinates are not drawn.
  """
  frames = np.array(frames_rgb, dtype=np.uint8)
  height, width = frames.shape[-3:-1]
  top, left, bottom, right = (
      np.asarray(edge, dtype=np.float64)[..., None, None] for edge in boxes)
  # Original pixel i covers upscaled pixels i*u .. (i+1)*u - 1.
  top, left = np.round(top * upscale), np.round(left * upscale)
  bottom = np.round((bottom + 1.0) * upscale) - 1.0
  right = np.round((right + 1.0) * upscale) - 1.0
  rows = np.arange(height)[:, None]
  cols = np.arange(width)[None, :]
  within_rows = (rows >= top) & (rows <= bottom)
  within_cols = (cols >= left) & (cols <= right)
  on_edge = (rows == top) | (rows == bottom) | (cols == left) | (cols == right)
  # NaN compares false everywhere, and only pixels that exist are tested, so
  # invalid boxes vanish and clipping comes for free.
  outline = on_edge & within_rows & within_cols
  frames[np.broadcast_to(outline, frames.shape[:-1])] = colour
  return frames


def _params_at(params, index):
  """The AttentionParams of every sample at one step, as numpy."""
  return attention.AttentionParams(
      *(np.asarray(field)[index] for field in params))


def _boxes_to_draw(write_params, read_params, write_n, read_n):
  """[(params, glimpse, colour)] for the windows that were given."""
  windows = []
  for params, glimpse, colour, name in (
      (write_params, write_n, WRITE_COLOUR, 'write_n'),
      (read_params, read_n, READ_COLOUR, 'read_n')):
    if params is None:
      continue
    if glimpse is None:
      raise ValueError(f'{name} is needed to draw its attention window')
    windows.append((params, glimpse, colour))
  return windows


def canvas_frames(canvases_per_step, write_params=None, read_params=None,
                  write_n=None, read_n=None, upscale=4, show_boxes=True,
                  padding=1):
  """Per step t, the grid of the samples' upscaled canvases with their boxes.

  The write window (red) and read window (green) of step t are drawn on each
  sample's cell, so they are clipped to that cell.
  """
  canvases = np.asarray(canvases_per_step)
  windows = (_boxes_to_draw(write_params, read_params, write_n, read_n)
             if show_boxes else [])
  rows, cols = _grid_shape(canvases.shape[1])
  frames = []
  for t in range(canvases.shape[0]):
    cells = _upscale(_to_rgb_uint8(canvases[t]), upscale)
    for params, glimpse, colour in windows:
      box = attention_box(_params_at(params, t), glimpse)
      cells = draw_boxes(cells, box, colour, upscale)
    frames.append(_tile(cells, rows, cols, padding))
  return frames


def save_canvas_gif(path, canvases_per_step, write_params=None,
                    read_params=None, write_n=None, read_n=None, upscale=4,
                    frame_duration=0.1, hold_frames=10, show_boxes=True):
  """Writes a looping GIF of the canvas drawing itself; returns the path.

  Each frame lasts frame_duration seconds and the last one hold_frames
  durations longer. The hold is a longer last frame, not repeated frames:
  Pillow merges identical consecutive GIF frames anyway.
  """
  frames = canvas_frames(canvases_per_step, write_params, read_params,
                         write_n, read_n, upscale, show_boxes)
  # imageio v3's Pillow plugin takes durations in milliseconds.
  frame_ms = 1000.0 * frame_duration
  durations = [round(frame_ms)] * len(frames)
  durations[-1] = round(frame_ms * (1 + hold_frames))
  iio.imwrite(path, np.stack(frames), duration=durations, loop=0)
  return path


def filterbank_image(params, height, width, glimpse, upscale=4):
  """The N x N filters F_Y[i]^T F_X[j], each an H x W image, in an N x N grid.

  `params` holds one glimpse's scalars. Each filter is scaled to peak at white,
  since the raw products are too faint to see.
  """
  scalars = attention.AttentionParams(*(float(np.asarray(f)) for f in params))
  fx_NxA, fy_NxB = (np.asarray(f, dtype=np.float64) for f in
                    attention.filterbank(scalars, height, width, glimpse))
  filters_NxNxBxA = np.einsum('ib,ja->ijba', fy_NxB, fx_NxA)
  peaks = filters_NxNxBxA.max(axis=(-2, -1), keepdims=True)
  # Filters lying wholly off the image are all zero; leave them black.
  normalised = filters_NxNxBxA / np.where(peaks > 0, peaks, 1.0)
  cells = normalised.reshape(glimpse * glimpse, height, width, 1)
  return _tile(_upscale(_to_rgb_uint8(cells), upscale), glimpse, glimpse, 1)


def save_png(path, image):
  """Writes a uint8 image [h, w, 3] as PNG; returns the path."""
  iio.imwrite(path, np.asarray(image, dtype=np.uint8))
  return path


def glimpse_boxes_image(images, glimpse_params, glimpse, upscale=2,
                        padding=1):
  """One row per image [n, H, W, C], one column per glimpse t with its box.

  `glimpse_params` has fields [T, n], as a classifier's output gives them.
  Like the paper's Figure 4, cell (i, t) is image i upscaled with glimpse t's
  read window outlined in READ_COLOUR.
  """
  images = np.asarray(images)
  boxes_TxN = attention_box(glimpse_params, glimpse)
  num_steps, n = np.shape(boxes_TxN[0])
  if n != images.shape[0]:
    raise ValueError(f'{images.shape[0]} images but glimpse params for {n}')
  cells = _upscale(_to_rgb_uint8(images), upscale)  # [n, h, w, 3]
  cells_NxT = np.broadcast_to(cells[:, None], (n, num_steps) + cells.shape[1:])
  boxes_NxT = tuple(np.swapaxes(edge, 0, 1) for edge in boxes_TxN)
  cells_NxT = draw_boxes(cells_NxT, boxes_NxT, READ_COLOUR, upscale)
  return _tile(cells_NxT.reshape((n * num_steps,) + cells.shape[1:]), n,
               num_steps, padding)
