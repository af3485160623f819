"""What averaging a run's parameters would buy: the -ELBO of averaged checkpoints.

  python scripts/average_checkpoints.py --config=configs/mnist_attn.py \
      --workdir=$HOME/draw_runs/mnist_attn_paper --steps=92519,93192,93600

For k = 1 .. len(steps), the -ELBO on --split (all its images, the trainer's
fixed evaluation noise) of the mean of the newest k checkpoints' parameters:
k = 1 is the newest alone. A run keeps only its latest few checkpoints, so a
longer stretch needs them kept as they come (docs/results.md says how the
campaign did). The evidence behind train.ema_decay; prints one line per k,
then a JSON line.
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
from absl import app
from absl import flags
from ml_collections import config_flags

from draw_jax import datasets
from draw_jax import checkpoints
from draw_jax import evaluate
from draw_jax import settings as settings_lib
from draw_jax import sharding
from draw_jax import train_state

config_flags.DEFINE_config_file('config', None, 'The run\'s configs/*.py file.')
flags.DEFINE_string('workdir', None, 'A folder with checkpoints/<step>/.')
flags.DEFINE_list('steps', None, 'Checkpoint steps, oldest first.')
flags.DEFINE_enum('split', 'valid', ['train', 'valid', 'test'],
                  'The split measured; train tells how well the run fits it.')
flags.mark_flags_as_required(['config', 'workdir', 'steps'])
FLAGS = flags.FLAGS


def mean_params(params):
  return jax.tree.map(lambda *leaves: sum(leaves) / len(leaves), *params)


def averaged_neg_elbos(settings, workdir, steps, split):
  """{k: -ELBO of the mean of the newest k of steps' parameters}."""
  mesh = sharding.make_mesh()
  params = [checkpoints.load_params(settings.model, workdir, mesh, step)[0]
            for step in steps]
  data = settings.data
  splits = datasets.load_splits(data.name, data.dir, data.max_examples)
  evaluator = evaluate.Evaluator(settings, train_state.graphdef(settings.model),
                                 mesh)
  return {k: evaluator.split_means(mean_params(params[-k:]),
                                   getattr(splits, split))['neg_elbo']
          for k in range(1, len(params) + 1)}


def main(argv):
  del argv
  try:
    steps = [int(step) for step in FLAGS.steps]
    figures = averaged_neg_elbos(settings_lib.parse(FLAGS.config),
                                 FLAGS.workdir, steps, FLAGS.split)
  except (OSError, ValueError) as error:
    sys.exit(f'error: {error}')
  for k, figure in figures.items():
    print(f'newest {k} ({steps[-k]}..{steps[-1]}): {FLAGS.split} -ELBO '
          f'{figure:.4f}')
  print(json.dumps(dict(steps=steps, split=FLAGS.split,
                        neg_elbo={str(k): v for k, v in figures.items()})))


if __name__ == '__main__':
  app.run(main)
