"""SVHN generation (paper section 4.3): 32x32 colour house numbers.

The paper's network: T = 32, 800-unit LSTMs, |z| = 100, 12x12 read and
write. The paper treats intensities in [0, 1] as Bernoulli probabilities
(likelihood=bernoulli); likelihood=discretized_logistic is a proper
likelihood of the 8-bit data, reported in bits/dim.

  python -m draw_jax.main --config=configs/svhn.py --workdir=/tmp/draw_svhn
  python -m draw_jax.main --config=configs/svhn.py:likelihood=bernoulli --workdir=...

Data: train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/
in $DRAW_DATA_DIR/svhn/, or tensorflow-datasets' svhn_cropped when online.
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.data.name = 'svhn'
  config.model.update(T=32, enc_size=800, dec_size=800, z_size=100,
                      read_n=12, write_n=12, likelihood='discretized_logistic')
  return defaults.apply_overrides(config, arg)
