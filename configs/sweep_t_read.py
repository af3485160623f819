"""A sweep over T and the read glimpse size, for scripts/sweep.py.

  python scripts/sweep.py --config=configs/mnist_attn.py \
    --sweep=configs/sweep_t_read.py --root=/tmp/sweep_t_read --parallel=2 \
    --extra=--config.train.num_steps=300

Measured: see README.md, "Scaling out".
"""
from draw_jax import sweep


def get_sweep():
  return sweep.product(T=[8, 16], read=[2, 3])
