"""The paper's binarized-MNIST DRAW without attention (Table 2: <= 87.40 nats).

Same as mnist_attn, but read = [x, x_hat] and write is a linear map to the
whole canvas.

  python -m draw_jax.main --config=configs/mnist_noattn.py --workdir=/tmp/draw_noattn

Measured (docs/experiments.md): a 30-minute run on one CPU core reached step
430 with test -ELBO 113.93 nats and importance-weighted NLL (K = 100, all
10,000 test images) 107.04; still far from convergence.
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.model.attention = False
  return defaults.apply_overrides(config, arg)
