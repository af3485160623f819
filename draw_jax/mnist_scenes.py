"""Scenes built from MNIST digits: two digits, cluttered digits, coloured digits.

The numpy generators are deterministic: each draws everything from
`np.random.default_rng(seed)` in a fixed order, so the same digits and seed
always give the same scenes. `datasets.load_splits` calls them with one
fixed seed per split (`SPLIT_SEEDS`: train 1, valid 2, test 3) on the MNIST
splits (train = MNIST train[:50000], valid = train[50000:], test = the test
file), so the three splits never share a scene layout. Partner digits and
clutter come from the same split, so no test digit leaks into training. With
max_examples = N only the first N digits of each split are used, so the
partners and clutter differ from a full-size run's.

- `two_digit` (paper, "MNIST Generation with Two Digits"): a 60x60 canvas
  holding digit i and one other digit chosen uniformly among the rest, each at
  an independent uniformly random position fully inside the canvas; where they
  overlap the intensities are added and clipped at full scale, as the paper
  describes. load_splits labels the scene with digit i's label; the second
  digit is unlabelled.
- `cluttered` (paper, "Cluttered MNIST Classification", Table 1; the 100x100
  cluttered translated MNIST of Mnih et al. 2014): a 100x100 canvas holding
  8 clutter pieces, each an 8x8 crop at a uniformly random place of a random
  other digit, pasted at a uniformly random position fully inside, then
  digit i at a uniformly random position fully inside; each piece and the
  digit are added and clipped at full scale, as DeepMind's generator
  (google-deepmind/mnist-cluttered) does. The label is digit i's label. All
  70,000 scenes take 700 MB as uint8.
- `fresh_cluttered` and `fresh_two_digit`: the same scenes in `jnp`, for a
  training batch on the device, each call a new layout drawn from its key:
  like RAM's and DRAW's training sets, generated on the fly, never repeated.
- `coloured`: a synthetic colour stand-in for SVHN and CIFAR-10 when they are
  not available offline: each 28x28 digit's intensity blends a random
  background colour (every channel uniform in [0, 0.3] of full scale) into a
  random foreground colour (every channel uniform in [0.4, 1]), so the three
  channels differ while the digit stays brighter than its background in every
  channel.
"""
import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SPLIT_SEEDS = {'train': 1, 'valid': 2, 'test': 3}

DIGIT_SIZE = 28
# Rows processed at once by `coloured`, so its float temporaries stay small
# (4096 images x 28 x 28 x 3 float32 is 38 MB) even for all 60,000 digits.
_CHUNK = 4096


def two_digit_layout(count, seed, size=60):
  """(partners [n], corners [n, 2, 2]) of two_digit's scenes for that seed.

  Scene i holds digit i and digit partners[i]; corners[i, k] is the (row,
  column) of digit k's top-left pixel, 0-based, each digit 28x28.
  """
  _check_canvas_fits(size, DIGIT_SIZE)
  rng = np.random.default_rng(seed)
  partners = _other_indices(rng, count, ())
  corners = _positions(rng, (count, 2), size, DIGIT_SIZE)
  return partners, corners


def two_digit(digits, seed, size=60):
  """[n, size, size, 1] uint8: digit i plus one random other, added, clipped."""
  digits = _as_digit_array(digits)
  count = len(digits)
  partners, positions = two_digit_layout(count, seed, size)
  canvas = np.zeros((count, size, size), np.uint8)
  _paste(canvas, digits[..., 0], positions[:, 0, 0], positions[:, 0, 1],
         _add_clipped)
  _paste(canvas, digits[partners, ..., 0], positions[:, 1, 0],
         positions[:, 1, 1], _add_clipped)
  return canvas[..., None]


def cluttered(digits, labels, seed, size=100, clutter=8, crop=8):
  """(images [n, size, size, 1] uint8, int32 labels): digit i plus clutter."""
  digits = _as_digit_array(digits)
  labels = np.asarray(labels).astype(np.int32)
  count = len(digits)
  if labels.shape != (count,):
    raise ValueError(f'labels have shape {labels.shape}; expected ({count},)')
  _check_canvas_fits(size, DIGIT_SIZE)
  _check_canvas_fits(DIGIT_SIZE, crop)
  rng = np.random.default_rng(seed)
  digit_position = _positions(rng, (count,), size, DIGIT_SIZE)
  sources = _other_indices(rng, count, (clutter,))
  crop_corners = _positions(rng, (count, clutter), DIGIT_SIZE, crop)
  paste_positions = _positions(rng, (count, clutter), size, crop)
  canvas = np.zeros((count, size, size), np.uint8)
  for piece in range(clutter):
    pieces = _crops(digits[sources[:, piece], ..., 0],
                    crop_corners[:, piece], crop)
    _paste(canvas, pieces, paste_positions[:, piece, 0],
           paste_positions[:, piece, 1], _add_clipped)
  _paste(canvas, digits[..., 0], digit_position[:, 0], digit_position[:, 1],
         _add_clipped)
  return canvas[..., None], labels


def fresh_cluttered(digits, labels, indices, key, size=100, clutter=8,
                    crop=8):
  """`cluttered`'s scenes of digits[indices], a new layout from key: jnp.

  digits [n, 28, 28, 1] uint8 and labels [n] on the device; returns
  (scenes [b, size, size, 1] uint8, labels [b]). Clutter comes from any
  other digit of the split, as in `cluttered`.
  """
  count = digits.shape[0]
  batch = indices.shape[0]
  keys = jax.random.split(key, 4)
  sources = (indices[:, None] + jax.random.randint(
      keys[0], (batch, clutter), 1, max(count, 2))) % count
  crop_corners = jax.random.randint(keys[1], (batch, clutter, 2), 0,
                                    DIGIT_SIZE - crop + 1)
  paste_corners = jax.random.randint(keys[2], (batch, clutter, 2), 0,
                                     size - crop + 1)
  digit_corners = jax.random.randint(keys[3], (batch, 2), 0,
                                     size - DIGIT_SIZE + 1)
  pieces = jax.vmap(jax.vmap(
      lambda digit, corner: jax.lax.dynamic_slice(digit, corner, (crop, crop))
  ))(digits[sources, ..., 0], crop_corners)

  def scene(pieces, paste_corners, digit, digit_corner):
    canvas = jnp.zeros((size, size), jnp.uint8)
    for piece in range(clutter):
      canvas = _add_clipped_at(canvas, pieces[piece], paste_corners[piece])
    return _add_clipped_at(canvas, digit, digit_corner)[..., None]

  scenes = jax.vmap(scene)(pieces, paste_corners, digits[indices, ..., 0],
                           digit_corners)
  return scenes, labels[indices]


def fresh_two_digit(digits, labels, indices, key, size=60):
  """`two_digit`'s scenes of digits[indices], a new layout from key: jnp."""
  count = digits.shape[0]
  batch = indices.shape[0]
  partner_key, corner_key = jax.random.split(key)
  partners = (indices + jax.random.randint(partner_key, (batch,), 1,
                                           max(count, 2))) % count
  corners = jax.random.randint(corner_key, (batch, 2, 2), 0,
                               size - DIGIT_SIZE + 1)

  def scene(first, second, corners):
    canvas = _add_clipped_at(jnp.zeros((size, size), jnp.uint8), first,
                             corners[0])
    return _add_clipped_at(canvas, second, corners[1])[..., None]

  scenes = jax.vmap(scene)(digits[indices, ..., 0], digits[partners, ..., 0],
                           corners)
  return scenes, labels[indices]


def _add_clipped_at(canvas, patch, corner):
  """canvas with patch added at corner (row, col), clipped at 255: jnp."""
  region = jax.lax.dynamic_slice(canvas, corner, patch.shape)
  summed = jnp.minimum(region.astype(jnp.int32) + patch, 255).astype(jnp.uint8)
  return jax.lax.dynamic_update_slice(canvas, summed, corner)


def coloured(digits, seed):
  """[n, 28, 28, 3] uint8: each digit as a random colour on a darker one."""
  digits = _as_digit_array(digits)
  count = len(digits)
  rng = np.random.default_rng(seed)
  foreground = rng.uniform(0.4, 1.0, (count, 3)).astype(np.float32)
  background = rng.uniform(0.0, 0.3, (count, 3)).astype(np.float32)
  # 255 * (background + (foreground - background) * digit / 255), per channel.
  offset = 255 * background
  slope = foreground - background
  images = np.empty((count, DIGIT_SIZE, DIGIT_SIZE, 3), np.uint8)
  for start in range(0, count, _CHUNK):
    rows = slice(start, start + _CHUNK)
    colour = digits[rows].astype(np.float32) * slope[rows, None, None, :]
    colour += offset[rows, None, None, :]
    images[rows] = np.rint(colour, out=colour)
  return images


def _as_digit_array(digits):
  digits = np.asarray(digits)
  if digits.ndim != 4 or digits.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE, 1):
    raise ValueError(f'digits have shape {digits.shape}; expected [n, 28, 28, 1]')
  if digits.dtype != np.uint8:
    raise ValueError(f'digits have dtype {digits.dtype}; expected uint8')
  return digits


def _check_canvas_fits(canvas_size, piece_size):
  if canvas_size < piece_size:
    raise ValueError(
        f'a {piece_size}x{piece_size} piece does not fit a '
        f'{canvas_size}x{canvas_size} canvas')


def _other_indices(rng, count, shape):
  """For each i, indices drawn uniformly from the other count - 1 digits."""
  offsets = rng.integers(1, max(count, 2), (count, *shape))
  base = np.arange(count).reshape(count, *([1] * len(shape)))
  # A lone digit has no other digit to pair with, so it pairs with itself.
  return (base + offsets) % count if count > 1 else np.zeros_like(offsets)


def _positions(rng, shape, canvas_size, piece_size):
  """Uniform (row, col) corners that keep a piece fully inside the canvas."""
  return rng.integers(0, canvas_size - piece_size + 1, (*shape, 2))


def _crops(images_NxHxW, corners_Nx2, crop):
  """images[i, r_i:r_i + crop, c_i:c_i + crop] for every i at once."""
  windows = sliding_window_view(images_NxHxW, (crop, crop), axis=(1, 2))
  return windows[np.arange(len(windows)), corners_Nx2[:, 0], corners_Nx2[:, 1]]


def _add_clipped(canvas, patch):
  return np.minimum(canvas.astype(np.int32) + patch, 255).astype(np.uint8)


def _paste(canvas_NxHxW, patches_NxPxQ, top_N, left_N, combine):
  """canvas[i] = combine(canvas[i], patch i at (top_i, left_i)), in place."""
  # Indexing a view of every window position is about 40x faster than
  # building [n, P, Q] row and column index arrays. The windows overlap in
  # memory, but each image i writes exactly one of its windows here.
  windows = sliding_window_view(canvas_NxHxW, patches_NxPxQ.shape[1:],
                                axis=(1, 2), writeable=True)
  chosen = (np.arange(len(windows)), top_N, left_N)
  windows[chosen] = combine(windows[chosen], patches_NxPxQ)
