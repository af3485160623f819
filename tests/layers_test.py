"""The LSTM cell against an LSTM written with numpy."""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from draw_jax import layers


def _numpy_lstm(kernel, bias, state, inputs):
  """i, f, g, o = split([x, h] W + b); c' = s(f) c + s(i) tanh(g); h' = s(o) tanh(c')."""
  hidden, cell = state
  gates = np.concatenate([inputs, hidden], axis=-1) @ kernel + bias
  i, f, g, o = np.split(gates, 4, axis=-1)
  sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
  cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
  return sigmoid(o) * np.tanh(cell), cell


def test_the_cell_is_the_lstm_of_its_fused_gates():
  lstm = layers.LSTMCell(3, 4, dtype=jnp.float32, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  lstm.gates.bias.value = jnp.asarray(rng.normal(size=16), jnp.float32)
  state = tuple(jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
                for _ in range(2))
  inputs = jnp.asarray(rng.normal(size=(2, 3)), jnp.float32)
  hidden, cell = lstm(state, inputs)
  expected = _numpy_lstm(np.asarray(lstm.gates.kernel.value, np.float64),
                         np.asarray(lstm.gates.bias.value, np.float64),
                         [np.asarray(x, np.float64) for x in state],
                         np.asarray(inputs, np.float64))
  np.testing.assert_allclose(hidden, expected[0], atol=1e-5)
  np.testing.assert_allclose(cell, expected[1], atol=1e-5)
