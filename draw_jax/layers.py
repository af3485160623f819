"""What DRAW and the glimpse classifier share: the LSTM cell and how it runs."""
import jax
import jax.numpy as jnp
from flax import nnx

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# What the backward pass keeps of each time step; the rest it recomputes.
# 'dots' keeps only the weight matmuls' outputs, the fastest on a 2-core CPU
# (docs/performance.md); 'full' keeps only the scan carry, the least memory.
REMAT_POLICIES = {
    'none': None,
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    'full': jax.checkpoint_policies.nothing_saveable,
}
# Model config fields that change how a model runs, not its parameters.
EXECUTION_FIELDS = ('compute_dtype', 'scan_unroll', 'remat')


def rematerialised(step_fn, remat):
  """step_fn under the REMAT_POLICIES[remat] checkpoint policy."""
  if REMAT_POLICIES[remat] is None:
    return step_fn
  return jax.checkpoint(step_fn, policy=REMAT_POLICIES[remat])


class LSTMCell(nnx.Module):
  """An LSTM cell with one fused gate matmul over [inputs, h].

  One matmul of all four gates is 1.07x faster per training step than Flax's
  OptimizedLSTMCell and 1.16x faster than its LSTMCell (docs/performance.md).
  """

  def __init__(self, in_features, hidden_size, *, dtype, rngs):
    self.gates = nnx.Linear(in_features + hidden_size, 4 * hidden_size,
                            dtype=dtype, rngs=rngs)

  def __call__(self, state, inputs):
    hidden, cell = state
    gates = self.gates(jnp.concatenate([inputs, hidden], axis=-1))
    input_gate, forget_gate, candidate, output_gate = jnp.split(
        gates.astype(jnp.float32), 4, axis=-1)
    cell = (jax.nn.sigmoid(forget_gate) * cell +
            jax.nn.sigmoid(input_gate) * jnp.tanh(candidate))
    hidden = jax.nn.sigmoid(output_gate) * jnp.tanh(cell)
    return hidden, cell
