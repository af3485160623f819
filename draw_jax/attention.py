"""DRAW's differentiable Gaussian filterbank attention (paper section 3.2).

Pure `jnp` functions on one image; batch them with `jax.vmap`. Notation
follows the paper: A is the image width, B its height, N the glimpse size.
Pixel coordinates are 1-based (a = 1..A, b = 1..B), as in eq. (19)-(20).
"""
from typing import NamedTuple

import jax.numpy as jnp

# A filter whose Gaussian lies wholly off the image sums to 0; dividing by this
# floor instead gives an all-zero row rather than 0/0 = NaN.
NORMALISER_FLOOR = 1e-8
# write() divides by gamma = exp(log gamma), which underflows to 0 in float32
# once log gamma < -103. This floor keeps 1/gamma finite.
GAMMA_FLOOR = 1e-6


# The linear layer's raw outputs, in order: g~x, g~y, log sigma^2, log delta~,
# log gamma (eq. (21)).
NUM_RAW_PARAMS = 5
RAW_LOG_GAMMA = 4


class AttentionParams(NamedTuple):
  """The five attention parameters of one glimpse, in pixel units."""
  center_x: jnp.ndarray  # gx
  center_y: jnp.ndarray  # gy
  sigma2: jnp.ndarray  # isotropic Gaussian variance
  stride: jnp.ndarray  # delta, distance between neighbouring filter centres
  gamma: jnp.ndarray  # intensity


def attention_params(raw, height, width, glimpse):
  """Maps the 5 linear outputs (g~x, g~y, log s2, log d~, log gamma) to pixels.

  Eq. (21)-(24): gx = (A+1)/2 (g~x+1), gy = (B+1)/2 (g~y+1),
  delta = (max(A,B)-1)/(N-1) d~. With N = 1 there is a single filter at the
  centre and the stride is irrelevant, so the (N-1) divisor is floored at 1.
  """
  gx_tilde, gy_tilde, log_sigma2, log_delta_tilde, log_gamma = (
      raw[..., i] for i in range(NUM_RAW_PARAMS))
  stride_scale = (max(height, width) - 1.0) / max(glimpse - 1, 1)
  return AttentionParams(
      center_x=(width + 1.0) / 2.0 * (gx_tilde + 1.0),
      center_y=(height + 1.0) / 2.0 * (gy_tilde + 1.0),
      sigma2=jnp.exp(log_sigma2),
      stride=stride_scale * jnp.exp(log_delta_tilde),
      gamma=jnp.exp(log_gamma),
  )


def filter_centres(center, stride, glimpse):
  """Eq. (19)-(20): mu_i = g + (i - N/2 - 0.5) delta for i = 1..N."""
  offsets_N = jnp.arange(1, glimpse + 1, dtype=jnp.float32) - glimpse / 2.0 - 0.5
  return center + offsets_N * stride


def _gaussian_filters(center, stride, sigma2, size, glimpse):
  """Eq. (25)-(26): rows F[i, a] ∝ exp(-(a - mu_i)^2 / (2 sigma^2)), each
  normalised to sum to 1, [N, size]."""
  mu_N = filter_centres(center, stride, glimpse)
  pixels_S = jnp.arange(1, size + 1, dtype=jnp.float32)
  # Only the squared distance is divided by 2 sigma^2; the exponent itself is
  # not squared (a bug shipped by several public ports).
  filters_NxS = jnp.exp(-jnp.square(pixels_S[None, :] - mu_N[:, None]) /
                        (2.0 * sigma2))
  normaliser_Nx1 = jnp.sum(filters_NxS, axis=-1, keepdims=True)
  return filters_NxS / jnp.maximum(normaliser_Nx1, NORMALISER_FLOOR)


def filterbank(params, height, width, glimpse):
  """Returns (F_X [N, A], F_Y [N, B]) for one glimpse."""
  fx_NxA = _gaussian_filters(params.center_x, params.stride, params.sigma2,
                             width, glimpse)
  fy_NxB = _gaussian_filters(params.center_y, params.stride, params.sigma2,
                             height, glimpse)
  return fx_NxA, fy_NxB


def _with_channels(array):
  return array[..., None] if array.ndim == 2 else array


def read(image, params, glimpse):
  """Eq. (27): gamma F_Y x F_X^T, for an image [B, A] or [B, A, C]."""
  height, width = image.shape[:2]
  fx_NxA, fy_NxB = filterbank(params, height, width, glimpse)
  return read_with_filters(image, fx_NxA, fy_NxB, params.gamma)


def read_with_filters(image, fx_NxA, fy_NxB, gamma):
  """read() through a filterbank already built, so images can share one."""
  glimpse_NxNxC = gamma * jnp.einsum('ib,bac,ja->ijc', fy_NxB,
                                     _with_channels(image), fx_NxA)
  return glimpse_NxNxC if image.ndim == 3 else glimpse_NxNxC[..., 0]


def write(patch, params, height, width):
  """Eq. (29): (1/gamma) F_Y^T w F_X, for a patch [N, N] or [N, N, C]."""
  glimpse = patch.shape[0]
  fx_NxA, fy_NxB = filterbank(params, height, width, glimpse)
  # 1/gamma scales the N x N patch rather than the B x A canvas: the same
  # product, but its backward pass reduces over N^2 values per example, not
  # over the whole canvas. gamma is floored so that 1/gamma stays finite.
  patch_NxNxC = _with_channels(patch) / jnp.maximum(params.gamma, GAMMA_FLOOR)
  canvas_BxAxC = jnp.einsum('ib,ijc,ja->bac', fy_NxB, patch_NxNxC, fx_NxA)
  return canvas_BxAxC if patch.ndim == 3 else canvas_BxAxC[..., 0]
