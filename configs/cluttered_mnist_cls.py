"""Cluttered-MNIST classification with DRAW's read attention (paper 4.1).

100x100 images, each one MNIST digit at a random position among 8 random 8x8
crops of other digits (draw_jax/mnist_scenes.py). The paper's "differentiable
RAM": an LSTM of 256 units reads T = 8 glimpses of 12x12 through
attention.read, and a softmax on its last state classifies, trained on
cross-entropy. Paper, test error: 4.18% with 4 glimpses, 3.36% with 8.

  python -m draw_jax.main --config=configs/cluttered_mnist_cls.py --workdir=/tmp/draw_cls

Reaches, in 32 minutes on one CPU core (step 10,762, 28 epochs), 8.83% test
error (docs/experiments.md has the exact command, and why 3e-4):

  python -m draw_jax.main --config=configs/cluttered_mnist_cls.py:minutes=32 \
      --workdir=/tmp/draw_cls
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.task = 'classify'
  config.data.name = 'cluttered_mnist'
  config.classifier.update(T=8, hidden_size=256, glimpse=12)
  # 3e-4 rather than the generative models' 1e-3: at 1e-3 a run diverged at
  # step 7,800, while 3e-4 from scratch stayed stable (docs/experiments.md).
  config.train.update(learning_rate=3e-4, eval_every=2000,
                      checkpoint_every=1000)
  return defaults.apply_overrides(config, arg)
