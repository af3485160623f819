"""The paper's binarized-MNIST DRAW without attention (Table 2: <= 87.40 nats).

mnist_attn's network, but read = [x, x_hat], the whole image and the error
image, and write a linear map to the whole canvas. The recipe takes
mnist_attn's lessons (docs/results.md): 1,000 warm-up steps to 1e-3, held
there to epoch 200 so the rate is not spent early, then a cosine to 1% over
the last 100 epochs; the parameters' moving average (decay 0.9995)
evaluated, sampled and shipped; valid and test every 5 epochs.

  python -m draw_jax.main --config=configs/mnist_noattn.py --workdir=/tmp/draw_noattn

Its curve and result: docs/experiments.md.
"""
from configs import mnist_attn
from draw_jax import defaults


def get_config(arg=None):
  config = mnist_attn.get_config()
  config.model.attention = False
  config.train.update(learning_rate=1e-3, lr_drops=(), lr_decay_fraction=1 / 3)
  return defaults.apply_overrides(config, arg)
