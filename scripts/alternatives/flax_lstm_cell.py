"""draw_jax.model's LSTMCell as Flax's eight-matmul nnx.LSTMCell.

An earlier version for scripts/compare_step.py, which swaps in the names a
file shares with the module, here only LSTMCell:

  python scripts/compare_step.py --config=configs/mnist_attn.py \\
      --module=model --before=scripts/alternatives/flax_lstm_cell.py
"""
from flax import nnx


class LSTMCell(nnx.Module):
  """nnx.LSTMCell (one matmul per gate for the input and for h) behind
  draw_jax.model.LSTMCell's interface: state (h, c) in and out."""

  def __init__(self, in_features, hidden_size, *, dtype, rngs):
    self.cell = nnx.LSTMCell(in_features, hidden_size, dtype=dtype, rngs=rngs)

  def __call__(self, state, inputs):
    hidden, cell = state
    (cell, hidden), _ = self.cell((cell, hidden), inputs)
    return hidden, cell
