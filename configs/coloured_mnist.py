"""The colour path on data we have offline: MNIST digits tinted at random.

SVHN and CIFAR-10 are not on our machines, so this synthetic colour set
(draw_jax/mnist_scenes.py) checks C = 3 end to end: the same filters on every
channel, and the discretized logistic likelihood in bits/dim. The network is
CIFAR-10's (configs/cifar10.py) at MNIST's 28x28.

  python -m draw_jax.main --config=configs/coloured_mnist.py --workdir=/tmp/draw_colour

Reaches 6.00 bits/dim on test after 15 CPU minutes (step 132;
docs/experiments.md has the exact command):

  python -m draw_jax.main --config=configs/coloured_mnist.py:minutes=15 \
      --workdir=/tmp/draw_colour
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.data.name = 'coloured_mnist'
  config.model.update(T=64, enc_size=400, dec_size=400, z_size=200,
                      read_n=5, write_n=5, likelihood='discretized_logistic')
  return defaults.apply_overrides(config, arg)
