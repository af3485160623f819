"""A sweep over T and the read glimpse size, for scripts/sweep.py.

  python scripts/sweep.py --config=configs/mnist_attn.py \
    --sweep=configs/sweep_t_read.py --root=/tmp/sweep_t_read --parallel=2 \
    --extra=--config.train.num_steps=300

Measured at 300 steps (README.md, "Scaling out"): 198-201 nats test -ELBO
for every point, the early plateau.
"""
from draw_jax import sweep


def get_sweep():
  return sweep.product(T=[8, 16], read=[2, 3])
