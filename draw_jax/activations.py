"""The logistic sigmoid of the training step's hot path.

XLA expands jax.nn.sigmoid on CPU to an exponential and a division, while its
tanh is a short rational approximation; through the identity
sigmoid(x) = (1 + tanh(x / 2)) / 2 the same function is cheaper, and the
training step got faster with it (README.md, Performance). The two agree to
3e-7 in float32, value and gradient (tests/activations_test.py). Used where
a sigmoid runs on every time step: the LSTM gates and the canvas mean that
the error image subtracts. Losses that take logs of
sigmoids (objectives.py's likelihoods) keep the library's log-domain forms.
"""
import jax.numpy as jnp


def sigmoid(x):
  return 0.5 * jnp.tanh(0.5 * x) + 0.5
