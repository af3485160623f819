"""The paper's binarized-MNIST DRAW with attention (Table 2: <= 80.97 nats).

The network is the paper's: T = 64, 256-unit encoder and decoder LSTMs,
|z| = 100, 2x2 read, 5x5 write, Bernoulli likelihood, on the fixed binarized
MNIST (Larochelle's 50k/10k/10k). The recipe is ours: Adam at a peak of 2e-3
after 1,000 warm-up steps, halved at epoch 10, cosine decay to 1% of the
peak over 300 epochs (117,000 steps of 128), global-norm clipping at 10; the
parameters' moving average (decay 0.9995) is what is evaluated, sampled and
shipped. Valid and test are evaluated every 5 epochs.

  python -m draw_jax.main --config=configs/mnist_attn.py --workdir=/tmp/draw_attn

Reaches, at epoch 300 (pretrained/mnist_attn): test -ELBO 82.69 nats on all
10,000 test images (valid 83.06); importance-weighted NLL, K = 100, 80.38:

  python -m draw_jax.main --config=configs/mnist_attn.py \
      --workdir=pretrained/mnist_attn --mode=eval --config.eval.iw_samples=100

The evidence for each choice, the learning curve and the training time:
docs/results.md.
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.train.update(
      learning_rate=2e-3, warmup_steps=1000, lr_schedule='cosine',
      lr_end_fraction=0.01, num_epochs=300,
      lr_drops=((3900, 0.5),),  # epoch 10
      eval_every=1950, eval_test=True,  # every 5 epochs
      checkpoint_every=1950, checkpoint_every_minutes=10.0,
      # A long unattended run skips a rare non-finite update, and counts it,
      # rather than stopping.
      skip_nonfinite_updates=True,
      # Evaluated, sampled and shipped: the parameters' moving average, about
      # 2,000 steps long (docs/results.md: averaging checkpoints gained 0.12).
      ema_decay=0.9995)
  return defaults.apply_overrides(config, arg)
