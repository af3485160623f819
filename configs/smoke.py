"""A tiny DRAW for tests and for checking an install: seconds on a CPU.

  python -m draw_jax.main --config=configs/smoke.py --workdir=/tmp/draw_smoke

It trains 20 steps; its ELBO means nothing beyond "the program runs".
"""
from draw_jax import defaults


def get_config(arg=None):
  config = defaults.get_config()
  config.model.update(T=4, enc_size=32, dec_size=32, z_size=8,
                      read_n=2, write_n=3)
  config.train.update(batch_size=16, num_steps=20, checkpoint_every=10,
                      eval_every=10, log_every=5)
  # Every batch divides over 1, 2, 4 or 8 devices, for the sharding tests.
  config.eval.update(batch_size=1000, iw_samples=4, iw_samples_per_pass=2,
                     iw_batch_size=200, iw_examples=200)
  config.sample.update(num_samples=9, upscale=2, gif_hold_frames=2)
  return defaults.apply_overrides(config, arg)
