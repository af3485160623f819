"""Cluttered-MNIST classification with DRAW's read attention (paper 4.1).

100x100 images, each one MNIST digit at a random position over 8 random 8x8
crops of other digits, added and clipped (draw_jax/mnist_scenes.py, as
DeepMind's generator for RAM); every training batch is a new layout
(data.fresh_scenes), valid and test fixed. The paper's "differentiable RAM":
an LSTM of 256 units reads T = 8 glimpses of 12x12 through attention.read,
and a softmax on its last state classifies, trained on cross-entropy. Paper,
test error: 3.36% with 8 glimpses, 4.18% with 4.

Recipe: Adam, 1,000 warm-up steps to 5e-4, cosine to 1% over 100 epochs
(39,000 steps of 128), the parameters' moving average (decay 0.999)
evaluated and shipped, valid and test every 5 epochs.

  python -m draw_jax.main --config=configs/cluttered_mnist_cls.py --workdir=/tmp/draw_cls
  python -m draw_jax.main --config=configs/cluttered_mnist_cls.py:glimpses=4 --workdir=/tmp/draw_cls4

Its results and the evidence for the recipe: docs/experiments.md.
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.task = 'classify'
  config.data.name = 'cluttered_mnist'
  config.classifier.update(T=8, hidden_size=256, glimpse=12)
  # 5e-4 at its peak: a constant 1e-3 on fixed scenes diverged at step 7,800,
  # while 3e-4 stayed stable (docs/experiments.md).
  config.train.update(
      learning_rate=5e-4, warmup_steps=1000, lr_schedule='cosine',
      lr_end_fraction=0.01, num_epochs=100, ema_decay=0.999,
      eval_every=1950, eval_test=True, checkpoint_every=1950,
      checkpoint_every_minutes=10.0, skip_nonfinite_updates=True)
  return defaults.apply_overrides(config, arg)
