"""The hot path's sigmoid is the logistic function, value and gradient."""
import jax
import jax.numpy as jnp
import numpy as np

from draw_jax import layers


def test_sigmoid_matches_the_logistic_function_and_its_gradient():
  x = jnp.linspace(-40.0, 40.0, 20001, dtype=jnp.float32)
  np.testing.assert_allclose(layers.sigmoid(x), jax.nn.sigmoid(x),
                             rtol=0, atol=3e-7)
  gradient = jax.vmap(jax.grad(layers.sigmoid))(x)
  np.testing.assert_allclose(gradient, jax.vmap(jax.grad(jax.nn.sigmoid))(x),
                             rtol=0, atol=3e-7)
  # Saturates to exactly 0 and 1 rather than overflowing.
  assert layers.sigmoid(jnp.float32(-1e4)) == 0.0
  assert layers.sigmoid(jnp.float32(1e4)) == 1.0
  assert layers.sigmoid(jnp.float32(0.0)) == 0.5
