"""Filterbank, read and write against the paper's formulas (section 3.2)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from draw_jax import attention


def _raw(gx=0.0, gy=0.0, log_sigma2=0.0, log_delta=0.0, log_gamma=0.0):
  return jnp.array([gx, gy, log_sigma2, log_delta, log_gamma], jnp.float32)


def _numpy_filterbank(raw, height, width, glimpse):
  """The paper's eq. (19)-(26), written independently with numpy in float64."""
  gx_t, gy_t, log_s2, log_d, _ = np.asarray(raw, np.float64)
  gx = (width + 1) / 2 * (gx_t + 1)
  gy = (height + 1) / 2 * (gy_t + 1)
  delta = (max(width, height) - 1) / (glimpse - 1) * np.exp(log_d)
  sigma2 = np.exp(log_s2)
  fx = np.zeros((glimpse, width))
  fy = np.zeros((glimpse, height))
  for i in range(1, glimpse + 1):
    mu_x = gx + (i - glimpse / 2 - 0.5) * delta
    mu_y = gy + (i - glimpse / 2 - 0.5) * delta
    for a in range(1, width + 1):
      fx[i - 1, a - 1] = np.exp(-((a - mu_x)**2) / (2 * sigma2))
    for b in range(1, height + 1):
      fy[i - 1, b - 1] = np.exp(-((b - mu_y)**2) / (2 * sigma2))
  return (fx / fx.sum(1, keepdims=True), fy / fy.sum(1, keepdims=True))


def _filterbank(raw, height, width, glimpse):
  params = attention.attention_params(raw, height, width, glimpse)
  return attention.filterbank(params, height, width, glimpse)


@pytest.mark.parametrize('raw', [_raw(), _raw(0.3, -0.5, 0.7, -0.2),
                                 _raw(-0.3, 0.4, -1.0, -0.5)])
def test_filterbank_matches_independent_numpy(raw):
  fx, fy = _filterbank(raw, 20, 28, 5)
  ref_fx, ref_fy = _numpy_filterbank(raw, 20, 28, 5)
  assert fx.shape == (5, 28) and fy.shape == (5, 20)
  np.testing.assert_allclose(fx, ref_fx, atol=1e-6)
  np.testing.assert_allclose(fy, ref_fy, atol=1e-6)


def test_rows_sum_to_one():
  fx, fy = _filterbank(_raw(0.1, -0.2, 0.5, 0.3), 28, 28, 12)
  np.testing.assert_allclose(fx.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_allclose(fy.sum(-1), 1.0, atol=1e-6)


def test_each_row_is_symmetric_about_its_centre():
  # Centre each filter on a pixel, far from the edges, so the row is cut evenly.
  params = attention.AttentionParams(
      center_x=jnp.float32(15.0), center_y=jnp.float32(15.0),
      sigma2=jnp.float32(2.0), stride=jnp.float32(2.0), gamma=jnp.float32(1.0))
  fx, _ = attention.filterbank(params, 29, 29, 3)
  centres = attention.filter_centres(15.0, 2.0, 3)
  for row, centre in zip(np.asarray(fx), np.asarray(centres)):
    peak = int(round(float(centre))) - 1  # 0-based index of the centre pixel
    half = min(peak, 28 - peak)
    np.testing.assert_allclose(row[peak - half:peak], row[peak + 1:peak + half + 1][::-1],
                               atol=1e-7)
    assert int(np.argmax(row)) == peak


def test_centres_evenly_spaced_and_centred():
  height = width = 28
  glimpse = 5
  params = attention.attention_params(_raw(), height, width, glimpse)
  centres = np.asarray(attention.filter_centres(params.center_x, params.stride, glimpse))
  np.testing.assert_allclose(np.diff(centres), (28 - 1) / (5 - 1), rtol=1e-6)
  np.testing.assert_allclose(centres.mean(), (width + 1) / 2, rtol=1e-6)
  # (max(A,B)-1)/(N-1) with float division: 6.75, never 6.
  assert float(params.stride) == pytest.approx(6.75)


def test_centre_scaling_uses_float_division():
  params = attention.attention_params(_raw(gx=0.5, gy=-0.5), 20, 28, 4)
  assert float(params.center_x) == pytest.approx(29 / 2 * 1.5)
  assert float(params.center_y) == pytest.approx(21 / 2 * 0.5)
  assert float(params.stride) == pytest.approx(27 / 3)


def test_single_filter_glimpse_has_no_division_by_zero():
  params = attention.attention_params(_raw(), 28, 28, 1)
  fx, fy = attention.filterbank(params, 28, 28, 1)
  assert np.all(np.isfinite(fx)) and np.all(np.isfinite(fy))
  assert int(np.argmax(fx[0])) in (13, 14)


def test_gy_moves_only_the_y_filters():
  fx0, fy0 = _filterbank(_raw(gy=0.0), 28, 28, 3)
  fx1, fy1 = _filterbank(_raw(gy=0.5), 28, 28, 3)
  np.testing.assert_array_equal(fx0, fx1)
  assert np.abs(fy0 - fy1).max() > 0.1
  assert np.argmax(fy1[1]) > np.argmax(fy0[1])


def test_exponent_is_not_squared():
  # One filter, sigma^2 = 1, at pixel 14: neighbour ratio exp(-1/2), not exp(-1/4).
  params = attention.AttentionParams(*(jnp.float32(v) for v in (14.0, 14.0, 1.0, 1.0, 1.0)))
  fx, _ = attention.filterbank(params, 28, 28, 1)
  assert float(fx[0, 14] / fx[0, 13]) == pytest.approx(np.exp(-0.5), rel=1e-5)


def test_filter_off_the_image_is_zero_not_nan():
  params = attention.AttentionParams(*(jnp.float32(v) for v in (1e4, 1e4, 0.01, 1.0, 1.0)))
  fx, fy = attention.filterbank(params, 28, 28, 3)
  assert np.all(np.isfinite(fx)) and np.all(fx == 0)
  assert np.all(np.isfinite(fy)) and np.all(fy == 0)


def _identity_params(size):
  # Centre at the image centre, delta = 1, tiny sigma, gamma = 1.
  return attention.attention_params(_raw(log_sigma2=-12.0), size, size, size)


def test_read_and_write_are_identities_at_full_resolution():
  size = 12
  image = jax.random.uniform(jax.random.key(0), (size, size))
  params = _identity_params(size)
  np.testing.assert_allclose(attention.read(image, params, size), image, atol=1e-5)
  np.testing.assert_allclose(attention.write(image, params, size, size), image,
                             atol=1e-5)


@pytest.mark.parametrize('channels', [None, 3])
def test_read_write_adjoint(channels):
  height, width, glimpse = 20, 28, 5
  extra = () if channels is None else (channels,)
  image = jax.random.normal(jax.random.key(1), (height, width) + extra)
  patch = jax.random.normal(jax.random.key(2), (glimpse, glimpse) + extra)
  params = attention.attention_params(_raw(0.2, -0.3, 0.4, -0.1, 0.6),
                                      height, width, glimpse)
  read_out = attention.read(image, params, glimpse)
  written = attention.write(patch, params, height, width)
  assert read_out.shape == (glimpse, glimpse) + extra
  assert written.shape == (height, width) + extra
  lhs = float(jnp.vdot(read_out, patch))
  rhs = float(params.gamma**2 * jnp.vdot(image, written))
  assert lhs == pytest.approx(rhs, rel=1e-4)


def test_channels_share_the_filters():
  image = jax.random.uniform(jax.random.key(3), (16, 16, 3))
  params = attention.attention_params(_raw(0.1, 0.2, 0.3, 0.4, 0.5), 16, 16, 4)
  together = attention.read(image, params, 4)
  for channel in range(3):
    np.testing.assert_allclose(together[..., channel],
                               attention.read(image[..., channel], params, 4),
                               atol=1e-6)


def test_vmap_read_equals_loop():
  images = jax.random.uniform(jax.random.key(4), (6, 20, 28))
  raws = jax.random.normal(jax.random.key(5), (6, 5))
  params = attention.attention_params(raws, 20, 28, 3)
  batched = jax.jit(jax.vmap(attention.read, in_axes=(0, 0, None)),
                    static_argnums=2)(images, params, 3)
  for i in range(6):
    one = attention.read(images[i], jax.tree.map(lambda p: p[i], params), 3)
    np.testing.assert_allclose(batched[i], one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('extreme', [-20.0, 20.0])
def test_gradients_finite_for_extreme_raw_parameters(extreme):
  image = jax.random.uniform(jax.random.key(6), (28, 28))
  patch = jnp.ones((5, 5))

  def loss(raw):
    params = attention.attention_params(raw, 28, 28, 5)
    return (jnp.sum(attention.read(image, params, 5)) +
            jnp.sum(attention.write(patch, params, 28, 28)))

  for raw in (jnp.full((5,), extreme), _raw(extreme, -extreme, extreme, extreme, -extreme)):
    grads = jax.jit(jax.grad(loss))(raw)
    assert np.all(np.isfinite(grads)), grads


def test_write_guards_gamma_that_underflows():
  params = attention.attention_params(_raw(log_gamma=-200.0), 28, 28, 5)
  assert float(params.gamma) == 0.0  # float32 underflow
  written = attention.write(jnp.ones((5, 5)), params, 28, 28)
  assert np.all(np.isfinite(written))


def _numpy_read_and_write(raw, image, patch):
  """Eq. (27) and (29) from the numpy filterbank, channel by channel."""
  height, width, channels = image.shape
  glimpse = patch.shape[0]
  fx, fy = _numpy_filterbank(raw, height, width, glimpse)
  gamma = np.exp(np.float64(raw[4]))
  read = np.stack([gamma * fy @ image[..., c] @ fx.T for c in range(channels)],
                  axis=-1)
  written = np.stack([fy.T @ patch[..., c] @ fx / gamma
                      for c in range(channels)], axis=-1)
  return read, written


@pytest.mark.parametrize('channels', [1, 3])
def test_read_and_write_match_independent_numpy(channels):
  raw = np.asarray(_raw(0.2, -0.3, 0.4, -0.1, 0.6))
  image = np.asarray(jax.random.uniform(jax.random.key(7), (20, 28, channels)))
  patch = np.asarray(jax.random.normal(jax.random.key(8), (5, 5, channels)))
  params = attention.attention_params(jnp.asarray(raw), 20, 28, 5)
  want_read, want_written = _numpy_read_and_write(raw, image, patch)
  np.testing.assert_allclose(attention.read(image, params, 5), want_read,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(attention.write(patch, params, 20, 28),
                             want_written, rtol=1e-4, atol=1e-6)
