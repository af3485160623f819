"""A sweep over T and the read glimpse size, for scripts/sweep.py.

  python scripts/sweep.py --config=configs/mnist_attn.py \
    --sweep=configs/sweep_t_read.py --root=/tmp/sweep_t_read --parallel=2 \
    --extra=--config.train.num_epochs=0 --extra=--config.train.num_steps=300 \
    --extra=--config.train.warmup_steps=0

Measured at 300 steps (docs/scaling.md): 198-201 nats test -ELBO for every
point, the early plateau.
"""
from draw_jax import sweep


def get_sweep():
  return sweep.product(T=[8, 16], read=[2, 3])
