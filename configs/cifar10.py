"""CIFAR-10 generation (paper section 4.3): 32x32 colour images.

The paper's network: T = 64, 400-unit LSTMs, |z| = 200, 5x5 read and write.
The paper treats intensities in [0, 1] as Bernoulli probabilities
(likelihood=bernoulli); likelihood=discretized_logistic is a proper
likelihood of the 8-bit data, reported in bits/dim.

  python -m draw_jax.main --config=configs/cifar10.py --workdir=/tmp/draw_cifar

Data: the python batches (cifar-10-batches-py/) from
https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz in
$DRAW_DATA_DIR/cifar10/, or tensorflow-datasets' cifar10 when online.
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.data.name = 'cifar10'
  config.model.update(T=64, enc_size=400, dec_size=400, z_size=200,
                      read_n=5, write_n=5, likelihood='discretized_logistic')
  return defaults.apply_overrides(config, arg)
