"""The colour path: the discretized logistic likelihood, bits/dim, C = 3."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import model_configs
from draw_jax import model as draw_model
from draw_jax import objectives

LEVELS = np.arange(256) / 255.0


def _nll_of_every_level(mean_logit, log_scale):
  """-log P(x) for x = each of the 256 levels, one pixel with those params."""
  images = jnp.asarray(LEVELS, jnp.float32).reshape(256, 1, 1, 1)
  canvas = jnp.broadcast_to(jnp.array([mean_logit, log_scale], jnp.float32),
                            (256, 1, 1, 2))
  return np.asarray(objectives.discretized_logistic_nll(canvas, images),
                    np.float64)


def _reference_nll(mean_logit, log_scale, x):
  """Float64 logistic CDF differences, with the tails at levels 0 and 255."""
  mean = 1.0 / (1.0 + math.exp(-mean_logit))
  scale = math.exp(max(log_scale, -7.0))
  cdf = lambda v: 1.0 / (1.0 + math.exp(-(v - mean) / scale))
  half = 0.5 / 255.0
  upper = 1.0 if x > 1.0 - half else cdf(x + half)
  lower = 0.0 if x < half else cdf(x - half)
  return -math.log(upper - lower)


@pytest.mark.parametrize('mean_logit, log_scale',
                         [(0.0, -3.0), (2.0, -5.0), (-4.0, -1.0), (0.3, 1.0)])
def test_masses_of_the_256_levels_sum_to_one(mean_logit, log_scale):
  masses = np.exp(-_nll_of_every_level(mean_logit, log_scale))
  assert masses.sum() == pytest.approx(1.0, abs=2e-4)


@pytest.mark.parametrize('level', [0, 1, 77, 128, 254, 255])
def test_matches_float64_logistic_bin_masses(level):
  nll = _nll_of_every_level(0.4, -3.0)[level]
  assert nll == pytest.approx(_reference_nll(0.4, -3.0, LEVELS[level]), rel=1e-4)


def test_narrow_scale_off_centre_stays_finite_with_gradients():
  images = jnp.full((1, 1, 1, 1), 200 / 255.0)

  def nll(canvas):
    return objectives.discretized_logistic_nll(canvas, images)[0]

  canvas = jnp.array([[[[-6.0, -12.0]]]])  # mean ~0.0025, scale floored at e^-7
  value, grad = jax.value_and_grad(nll)(canvas)
  assert np.isfinite(value) and value > 100.0
  assert np.all(np.isfinite(grad)) and np.any(grad != 0.0)


def test_reconstruction_dispatches_and_rejects_unknown_likelihoods():
  canvas = jnp.zeros((2, 3, 3, 2))
  images = jnp.full((2, 3, 3, 1), 0.5)
  np.testing.assert_allclose(
      objectives.reconstruction(canvas, images, 'discretized_logistic'),
      objectives.discretized_logistic_nll(canvas, images))
  np.testing.assert_allclose(
      objectives.reconstruction(canvas[..., :1], images),
      objectives.bernoulli_reconstruction(canvas[..., :1], images))
  with pytest.raises(ValueError, match="unknown likelihood 'gaussian'"):
    objectives.reconstruction(canvas, images, 'gaussian')


def test_bits_per_dim_is_nats_over_dimensions_and_ln2():
  assert objectives.bits_per_dim(3072 * math.log(2.0) * 4.5, 3072) == (
      pytest.approx(4.5))


def _colour_model(likelihood):
  config = model_configs.draw(height=12, width=10, channels=3, T=3,
                              enc_size=16, dec_size=16, z_size=4, read_n=3,
                              write_n=4, likelihood=likelihood)
  return config, draw_model.Draw(config, rngs=nnx.Rngs(0))


def test_logistic_canvas_has_a_mean_and_a_scale_per_channel():
  config, model = _colour_model('discretized_logistic')
  assert config.canvas_shape == (12, 10, 6)
  images = jax.random.uniform(jax.random.key(1), (5, 12, 10, 3))
  output = model(images, jax.random.key(2))
  assert output.canvas_logits.shape == (5, 12, 10, 6)
  terms = objectives.negative_elbo(output, images, config.likelihood)
  assert terms.total.shape == (5,) and np.all(np.isfinite(terms.total))


def test_error_image_uses_the_mean_channels_only():
  # With the canvas at zero the mean is 0.5 whatever the scale channels hold,
  # so the first read must see x - 0.5 in the x_hat channels.
  config, model = _colour_model('discretized_logistic')
  images = jax.random.uniform(jax.random.key(3), (2, 12, 10, 3))
  state = model.initial_state(2)
  # The canvas's channels 3: are the log-scales.
  state = state.replace(canvas_logits=state.canvas_logits.at[..., 3:].set(5.0))
  seen = {}
  real_read = model._read

  def spy(images_in, error_images, hidden):
    seen['error'] = error_images
    return real_read(images_in, error_images, hidden)

  model._read = spy
  model.step(state, images, jnp.zeros((2, config.z_size)))
  np.testing.assert_allclose(seen['error'], images - 0.5, atol=1e-6)


def test_colour_read_and_write_share_one_filterbank_over_channels():
  config, model = _colour_model('bernoulli')
  grey = jax.random.uniform(jax.random.key(4), (2, 12, 10, 1))
  colour = jnp.concatenate([grey, grey, grey], axis=-1)
  read_vector, _ = model._read(colour, colour, jnp.ones((2, config.dec_size)))
  glimpses = read_vector.reshape(2, config.read_n, config.read_n, 6)
  # Three identical channels give three identical glimpses.
  np.testing.assert_allclose(glimpses[..., 0], glimpses[..., 1], atol=1e-6)
  np.testing.assert_allclose(glimpses[..., 0], glimpses[..., 2], atol=1e-6)
