"""DRAW's loss (paper section 2, eq. (9)-(12)) and an importance-weighted bound.

All quantities are in nats per example. Two likelihoods D(x | c_T):
- 'bernoulli', the paper's: sigmoid(c_T) are pixel probabilities; for grey or
  colour intensities in [0, 1] this is the paper's cross-entropy, which is not
  a normalised likelihood of 8-bit data;
- 'discretized_logistic' (Salimans et al. 2017) for 8-bit data scaled to
  [0, 1]: the canvas holds 2C channels, sigmoid of the first C the means and
  the last C the log-scales, and each of the 256 levels gets the logistic's
  mass over its bin, so -log p is in nats of the data and bits/dim compare.
"""
import math

import jax
import jax.numpy as jnp
import optax
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)
LIKELIHOODS = ('bernoulli', 'discretized_logistic')
_PIXEL_LEVELS = 256
_BIN_HALF_WIDTH = 0.5 / (_PIXEL_LEVELS - 1)
# exp(-7) ~ 1e-3, a quarter of a bin: narrower scales only buy instability.
_MIN_LOG_SCALE = -7.0


def bernoulli_reconstruction(canvas_logits, images):
  """Eq. (9): -log D(x | sigmoid(c_T)), summed over pixels, stable in logits."""
  per_pixel = optax.sigmoid_binary_cross_entropy(canvas_logits, images)
  return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)


def canvas_channels(channels, likelihood):
  """Channels of the canvas: a mean per image channel, plus a log-scale."""
  return 2 * channels if likelihood == 'discretized_logistic' else channels


def _sum_per_example(values):
  return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


def discretized_logistic_nll(canvas_logits, images):
  """-log P(x) of 8-bit images scaled to [0, 1], summed per example.

  Level x gets the logistic's mass on [x - h, x + h] with h half a bin; the
  end levels 0 and 1 take the tails, so the 256 masses sum to 1.
  """
  channels = images.shape[-1]
  mean = jax.nn.sigmoid(canvas_logits[..., :channels])
  log_scale = jnp.maximum(canvas_logits[..., channels:], _MIN_LOG_SCALE)
  inverse_scale = jnp.exp(-log_scale)
  upper = inverse_scale * (images - mean + _BIN_HALF_WIDTH)
  lower = inverse_scale * (images - mean - _BIN_HALF_WIDTH)
  log_cdf_upper = jax.nn.log_sigmoid(upper)
  log_survival_lower = jax.nn.log_sigmoid(-lower)
  centre = inverse_scale * (images - mean)
  # Above the mean both CDFs are near 1 and their float32 difference cancels;
  # the survival functions there are small and exact, so subtract those.
  bin_mass = jnp.where(centre > 0,
                       jax.nn.sigmoid(-lower) - jax.nn.sigmoid(-upper),
                       jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower))
  # Where the bin's mass underflows, density at the centre x width is exact
  # to first order and keeps the gradient.
  log_density_mass = (centre - log_scale - 2.0 * jax.nn.softplus(centre) +
                      math.log(2.0 * _BIN_HALF_WIDTH))
  log_interior = jnp.where(bin_mass > 1e-5,
                           jnp.log(jnp.maximum(bin_mass, 1e-12)),
                           log_density_mass)
  log_probability = jnp.where(
      images < _BIN_HALF_WIDTH, log_cdf_upper,
      jnp.where(images > 1.0 - _BIN_HALF_WIDTH, log_survival_lower,
                log_interior))
  return -_sum_per_example(log_probability)


def reconstruction(canvas_logits, images, likelihood='bernoulli'):
  """Eq. (9) for either likelihood: -log D(x | c_T) in nats per example."""
  if likelihood == 'discretized_logistic':
    return discretized_logistic_nll(canvas_logits, images)
  if likelihood == 'bernoulli':
    return bernoulli_reconstruction(canvas_logits, images)
  raise ValueError(f'unknown likelihood {likelihood!r}; choose one of '
                   f'{LIKELIHOODS}')


def bits_per_dim(nats, dimensions):
  """Nats per example as bits per pixel channel, the unit of later work."""
  return nats / (dimensions * math.log(2.0))


def gaussian_kl(mean, log_std):
  """Eq. (11): KL(N(mu, sigma) || N(0, I)) over the last axis.

  The constant is -1/2 per latent dimension, i.e. -|z|/2 per step; several
  public ports use -T/2 or -1/2 instead.
  """
  return 0.5 * jnp.sum(
      jnp.square(mean) + jnp.exp(2.0 * log_std) - 2.0 * log_std - 1.0, axis=-1)


@struct.dataclass
class NegativeElbo:
  """The two terms of eq. (12), kept apart, each of shape [batch]."""
  reconstruction: jnp.ndarray
  kl: jnp.ndarray

  @property
  def total(self):
    return self.reconstruction + self.kl


def negative_elbo(output, images, likelihood='bernoulli'):
  """Eq. (12): L = L^x + L^z, with L^z the KL summed over the T steps."""
  return NegativeElbo(
      reconstruction=reconstruction(output.canvas_logits, images, likelihood),
      kl=jnp.sum(output.kl_per_step, axis=0))


def _standard_normal_log_density(values):
  return -0.5 * jnp.sum(jnp.square(values) + _LOG_2PI, axis=-1)


def log_importance_weight(output, images, likelihood='bernoulli'):
  """log p(x, z_1:T) - log q(z_1:T | x) for the z the model drew, shape [batch].

  q factorises over steps as prod_t N(z_t; mu_t, sigma_t), where mu_t and
  sigma_t depend on z_<t through the decoder state, and the prior is N(0, I)
  at every step (paper section 2).
  """
  noise = (output.z - output.posterior_mean) * jnp.exp(-output.posterior_log_std)
  log_q = _standard_normal_log_density(noise) - jnp.sum(
      output.posterior_log_std, axis=-1)
  log_prior = _standard_normal_log_density(output.z)
  log_likelihood = -reconstruction(output.canvas_logits, images, likelihood)
  return log_likelihood + jnp.sum(log_prior - log_q, axis=0)


def largest_divisor_at_most(number, limit):
  """The largest d <= limit that divides number, so passes tile K exactly."""
  return max(d for d in range(1, min(number, limit) + 1) if number % d == 0)


def importance_weighted_nll(model, images, key, num_samples, samples_per_pass):
  """-log (1/K) sum_k p(x, z^k) / q(z^k | x), per example (Burda et al. 2016).

  K = num_samples posterior draws are taken in passes of samples_per_pass
  (a divisor of K is used), combined with a running logsumexp, so memory
  scales with samples_per_pass and not with K.
  """
  batch = images.shape[0]
  per_pass = largest_divisor_at_most(num_samples, samples_per_pass)
  repeated = jnp.tile(images, (per_pass,) + (1,) * (images.ndim - 1))

  def one_pass(running_logsumexp, pass_index):
    output = model(repeated, jax.random.fold_in(key, pass_index))
    log_weights = log_importance_weight(
        output, repeated, model.config.likelihood).reshape(per_pass, batch)
    return jnp.logaddexp(running_logsumexp,
                         jax.nn.logsumexp(log_weights, axis=0)), None

  initial = jnp.full((batch,), -jnp.inf, dtype=jnp.float32)
  total, _ = jax.lax.scan(one_pass, initial, jnp.arange(num_samples // per_pass))
  return -(total - math.log(num_samples))
