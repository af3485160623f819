"""Which latent units a trained DRAW uses, and where its -ELBO goes.

  python scripts/latent_activity.py --config=configs/mnist_attn.py \
      --workdir=pretrained/mnist_attn --split=valid

Unit u of step t is active when Cov_x(E_q[z_tu]) > --threshold (Burda et al.
2016, section 5.2): the posterior mean moves with the image. DRAW's q(z_t)
also depends on the z_<t drawn before it; the statistic is taken along one
posterior path per image, the evaluation's fixed noise. Prints the KL and the
active units of each step, the totals, the reconstruction term, then a JSON
line.
"""
import json
import os
import sys

# The repo root first on sys.path: this checkout's draw_jax, and configs/,
# whose files import each other as the package `configs`.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags
from flax import nnx
from ml_collections import config_flags

from draw_jax import checkpoints
from draw_jax import datasets
from draw_jax import input_pipeline
from draw_jax import objectives
from draw_jax import settings as settings_lib

config_flags.DEFINE_config_file('config', None, 'The run\'s configs/*.py file.')
flags.DEFINE_string('workdir', None, 'A workdir or pretrained/ folder.')
flags.DEFINE_enum('split', 'valid', ['train', 'valid', 'test'], 'The images.')
flags.DEFINE_float('threshold', 0.01, 'Active: Cov_x(E_q[z]) above this.')
flags.DEFINE_integer('batch_size', 500, 'Images per jitted pass.')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def activity(settings, workdir, split, threshold, batch_size):
  """Per-step KL, posterior-mean variance and active units over a split."""
  run = checkpoints.load_trained(settings.model, workdir, settings.eval.step)
  data = settings.data
  images = getattr(datasets.load_splits(data.name, data.dir, data.max_examples,
                                        only=(split,)), split)
  model = nnx.merge(run.graphdef, run.params)
  key = jax.random.fold_in(jax.random.key(settings.train.seed), 0xE7A1)

  @jax.jit
  def moments(images_uint8, batch_index):
    batch_key = jax.random.fold_in(key, batch_index)
    images = input_pipeline.binarize(images_uint8, settings.data.binarization,
                                     batch_key)
    output = model(images, batch_key)
    terms = objectives.negative_elbo(output, images, settings.model.likelihood)
    mean_TxBxZ = output.posterior_mean
    return dict(kl_T=output.kl_per_step.sum(1),
                reconstruction=terms.reconstruction.sum(),
                mean_sum_TxZ=mean_TxBxZ.sum(1),
                mean_square_sum_TxZ=jnp.square(mean_TxBxZ).sum(1))

  count = images.shape[0] - images.shape[0] % batch_size
  sums = None
  for index in range(count // batch_size):
    batch = moments(images[index * batch_size:(index + 1) * batch_size], index)
    batch = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)
    sums = batch if sums is None else jax.tree.map(np.add, sums, batch)
  mean_TxZ = sums['mean_sum_TxZ'] / count
  variance_TxZ = sums['mean_square_sum_TxZ'] / count - np.square(mean_TxZ)
  active_TxZ = variance_TxZ > threshold
  return dict(
      step=run.step, split=split, images=count, threshold=threshold,
      kl_per_step=(sums['kl_T'] / count).tolist(),
      active_per_step=active_TxZ.sum(1).tolist(),
      active_units=int(active_TxZ.sum()), latent_units=int(active_TxZ.size),
      units_active_at_some_step=int(active_TxZ.any(0).sum()),
      kl=float(sums['kl_T'].sum() / count),
      reconstruction=float(sums['reconstruction'] / count))


def main(argv):
  del argv
  try:
    result = activity(settings_lib.parse(FLAGS.config), FLAGS.workdir,
                      FLAGS.split, FLAGS.threshold, FLAGS.batch_size)
  except (OSError, ValueError) as error:
    sys.exit(f'error: {error}')
  print('step  KL (nats)  active units')
  for t, (kl, active) in enumerate(zip(result['kl_per_step'],
                                       result['active_per_step'])):
    print(f'{t + 1:4d}  {kl:9.3f}  {active:12d}')
  print(f"{result['split']}, {result['images']} images: -ELBO "
        f"{result['kl'] + result['reconstruction']:.2f} = reconstruction "
        f"{result['reconstruction']:.2f} + KL {result['kl']:.2f}; active "
        f"{result['active_units']} of {result['latent_units']} units; "
        f"{result['units_active_at_some_step']} of "
        f"{result['latent_units'] // len(result['kl_per_step'])}"
        ' z indices active at some step')
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
