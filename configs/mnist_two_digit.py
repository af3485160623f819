"""Two-digit MNIST generation (paper section 4.2): 60x60 scenes of two digits.

Each scene pastes two MNIST digits at independent random positions, generated
deterministically from the MNIST files (draw_jax/mnist_scenes.py) and
binarized afresh each batch. 256-unit LSTMs and |z| = 100 as for MNIST, with
12x12 read and write windows; T = 32 glimpses and batches of 64, which on a
CPU learned far faster than T = 64, a 6x6 read and batches of 128
(docs/experiments.md: training loss 407 against 483 at step 800).

  python -m draw_jax.main --config=configs/mnist_two_digit.py --workdir=/tmp/draw_two
  python scripts/two_digit_attention.py --config=configs/mnist_two_digit.py --workdir=/tmp/draw_two

Reaches, at step 6,941 (about 80 minutes on one CPU core), test -ELBO 246.83
nats, with the write window moving between the two digits
(docs/experiments.md).
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.data.name = 'mnist_two_digit'
  config.model.update(T=32, read_n=12, write_n=12)
  config.train.batch_size = 64
  return defaults.apply_overrides(config, arg)
