"""DRAW's differentiable Gaussian filterbank attention (paper section 3.2).

Pure `jnp` functions on one image; batch them with `jax.vmap`. Notation
follows the paper: A is the image width, B its height, N the glimpse size.
Pixel coordinates are 1-based (a = 1..A, b = 1..B), as in eq. (19)-(20).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp

# A filter whose Gaussian lies wholly off the image sums to 0; dividing by this
# floor instead gives an all-zero row rather than 0/0 = NaN.
NORMALISER_FLOOR = 1e-8
# write() divides by gamma = exp(log gamma), which underflows to 0 in float32
# once log gamma < -103. This floor keeps 1/gamma finite.
GAMMA_FLOOR = 1e-6


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
      raw[..., i] for i in range(5))
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
  """Rows F[i, a] ∝ exp(-(a - mu_i)^2 / (2 sigma^2)), each normalised to 1.

  Built as one flat row of N * size values and reshaped only at the end:
  vmapped over a batch it is then a 2-D array, on which XLA's CPU code runs
  the exponential about three times faster than on [batch, N, size]
  (docs/performance.md).
  """
  mu_N = filter_centres(center, stride, glimpse)
  pixels_NS = jnp.tile(jnp.arange(1, size + 1, dtype=jnp.float32), glimpse)
  # Only the squared distance is divided by 2 sigma^2; the exponent itself is
  # not squared (a bug shipped by several public ports).
  exponent_NS = -jnp.square(pixels_NS - jnp.repeat(mu_N, size)) / (2.0 * sigma2)
  filters_NS = jnp.exp(exponent_NS)
  normaliser_N = jnp.sum(filters_NS.reshape(glimpse, size), axis=-1)
  normaliser_NS = jnp.repeat(jnp.maximum(normaliser_N, NORMALISER_FLOOR), size)
  return (filters_NS / normaliser_NS).reshape(glimpse, size)


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
  image_BxAxC = _with_channels(image)
  # F_Y x as one [N, B] @ [B, A*C] matmul, then F_X^T: XLA's CPU backend runs
  # these two products faster than the three-operand einsum, whose order of
  # contraction transposes the image (docs/performance.md).
  rows_NxAxC = _matmul_rows(fy_NxB, image_BxAxC)
  glimpse_NxNxC = jnp.einsum('iac,ja->ijc', rows_NxAxC, fx_NxA)
  glimpse_NxNxC = gamma * glimpse_NxNxC
  return glimpse_NxNxC if image.ndim == 3 else glimpse_NxNxC[..., 0]


def write(patch, params, height, width):
  """Eq. (29): (1/gamma) F_Y^T w F_X, for a patch [N, N] or [N, N, C]."""
  glimpse = patch.shape[0]
  fx_NxA, fy_NxB = filterbank(params, height, width, glimpse)
  # 1/gamma scales the N x N patch rather than the B x A canvas: the same
  # product, but its backward pass reduces over N^2 values per example, not
  # over the whole canvas (7% of the CPU training step when it did).
  patch_NxNxC = _with_channels(patch) / jnp.maximum(params.gamma, GAMMA_FLOOR)
  canvas_BxAxC = _spread_patch(fy_NxB, patch_NxNxC, fx_NxA)
  return canvas_BxAxC if patch.ndim == 3 else canvas_BxAxC[..., 0]


def _matmul_rows(filters_NxS, array_SxAxC):
  """filters @ array over the array's first axis, as one [S, A*C] matmul."""
  size, width, channels = array_SxAxC.shape
  return jnp.matmul(filters_NxS, array_SxAxC.reshape(size, width * channels)
                    ).reshape(-1, width, channels)


@jax.custom_vjp
def _spread_patch(fy_NxB, patch_NxNxC, fx_NxA):
  """F_Y^T w F_X [B, A, C]: the three-operand einsum, the fastest forward."""
  return jnp.einsum('ib,ijc,ja->bac', fy_NxB, patch_NxNxC, fx_NxA)


def _spread_patch_forward(fy_NxB, patch_NxNxC, fx_NxA):
  return _spread_patch(fy_NxB, patch_NxNxC, fx_NxA), (fy_NxB, patch_NxNxC,
                                                      fx_NxA)


def _spread_patch_backward(residuals, canvas_grad_BxAxC):
  """The three gradients, as matmuls over whole canvas rows.

  JAX's own backward of the einsum is batched [N, A] x [A, B] products,
  which XLA's CPU backend runs slowly once vmapped over the batch; written
  this way the training step is about 3% faster (docs/performance.md).
  tests/attention_test.py checks it against JAX's differentiation.
  """
  fy_NxB, patch_NxNxC, fx_NxA = residuals
  rows_grad_NxAxC = _matmul_rows(fy_NxB, canvas_grad_BxAxC)
  rows_NxAxC = _patch_times_filters(patch_NxNxC, fx_NxA)
  glimpse, width, channels = rows_NxAxC.shape
  fy_grad_NxB = jnp.matmul(
      rows_NxAxC.reshape(glimpse, width * channels),
      canvas_grad_BxAxC.reshape(-1, width * channels).T)
  patch_grad = jnp.einsum('iac,ja->ijc', rows_grad_NxAxC, fx_NxA)
  fx_grad_NxA = jnp.einsum('ijc,iac->ja', patch_NxNxC, rows_grad_NxAxC)
  return fy_grad_NxB, patch_grad, fx_grad_NxA


_spread_patch.defvjp(_spread_patch_forward, _spread_patch_backward)


def _patch_times_filters(patch_NxNxC, fx_NxA):
  """P F_X per channel, [N, A, C], as one [N*C, N] @ [N, A] matmul.

  Vmapped, this is a plain batched matmul, which XLA's CPU backend gives to
  YNNPACK; the einsum 'ijc,ja->iac' became a batched Eigen dot with both
  operands contracted on their second axis, about 9 times slower
  (docs/performance.md).
  """
  glimpse, _, channels = patch_NxNxC.shape
  rows_NCxA = jnp.matmul(
      jnp.transpose(patch_NxNxC, (0, 2, 1)).reshape(glimpse * channels, glimpse),
      fx_NxA)
  return jnp.transpose(rows_NCxA.reshape(glimpse, channels, -1), (0, 2, 1))
