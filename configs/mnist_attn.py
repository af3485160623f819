"""The paper's binarized-MNIST DRAW with attention (Table 2: <= 80.97 nats).

T = 64, 256-unit encoder and decoder LSTMs, |z| = 100, 2x2 read, 5x5 write,
Adam 1e-3 with global-norm clipping, batch 128, on the fixed binarized MNIST
(Larochelle's 50k/10k/10k).

  python -m draw_jax.main --config=configs/mnist_attn.py --workdir=/tmp/draw_attn

Measured (README.md, "Results"): a 30-minute run on one CPU core reached step
659 with test -ELBO 164.31 nats and importance-weighted NLL (K = 100, all
10,000 test images) 153.56; still far from convergence.
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  return default.apply_overrides(config, arg)
