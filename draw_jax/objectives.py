"""DRAW's loss (paper section 2, eq. (9)-(12)) and an importance-weighted bound.

All quantities are in nats per example.
"""
import math

import jax
import jax.numpy as jnp
import optax
from flax import struct

_LOG_2PI = math.log(2.0 * math.pi)


def bernoulli_reconstruction(canvas_logits, images):
  """Eq. (9): -log D(x | sigmoid(c_T)), summed over pixels, stable in logits."""
  per_pixel = optax.sigmoid_binary_cross_entropy(canvas_logits, images)
  return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)


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


def negative_elbo(output, images):
  """Eq. (12): L = L^x + L^z, with L^z the KL summed over the T steps."""
  return NegativeElbo(
      reconstruction=bernoulli_reconstruction(output.canvas_logits, images),
      kl=jnp.sum(output.kl_per_step, axis=0))


def _standard_normal_log_density(values):
  return -0.5 * jnp.sum(jnp.square(values) + _LOG_2PI, axis=-1)


def log_importance_weight(output, images):
  """log p(x, z_1:T) - log q(z_1:T | x) for the z the model drew, shape [batch].

  q factorises over steps as prod_t N(z_t; mu_t, sigma_t), where mu_t and
  sigma_t depend on z_<t through the decoder state, and the prior is N(0, I)
  at every step (paper section 2).
  """
  noise = (output.z - output.posterior_mean) * jnp.exp(-output.posterior_log_std)
  log_q = _standard_normal_log_density(noise) - jnp.sum(
      output.posterior_log_std, axis=-1)
  log_prior = _standard_normal_log_density(output.z)
  log_likelihood = -bernoulli_reconstruction(output.canvas_logits, images)
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
    log_weights = log_importance_weight(output, repeated).reshape(per_pass, batch)
    return jnp.logaddexp(running_logsumexp,
                         jax.nn.logsumexp(log_weights, axis=0)), None

  initial = jnp.full((batch,), -jnp.inf, dtype=jnp.float32)
  total, _ = jax.lax.scan(one_pass, initial, jnp.arange(num_samples // per_pass))
  return -(total - math.log(num_samples))
