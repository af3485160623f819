"""Two-digit MNIST generation (paper section 4.2): 60x60 scenes of two digits.

Each scene pastes two MNIST digits at independent random positions, generated
deterministically from the MNIST files (draw_jax/mnist_scenes.py) and
binarized afresh each batch. The paper's network for this task: T = 64,
256-unit LSTMs, |z| = 100, 12x12 write; we read 6x6.

  python -m draw_jax.main --config=configs/mnist_two_digit.py --workdir=/tmp/draw_two
"""
from configs import default


def get_config(arg=None):
  config = default.get_config()
  config.data.name = 'mnist_two_digit'
  config.model.update(T=64, read_n=6, write_n=12)
  return default.apply_overrides(config, arg)
