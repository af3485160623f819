"""Copies a run's parameters into a pretrained/ folder, measured on the way.

  python scripts/export_pretrained.py --config=configs/mnist_attn.py \
      --workdir=$HOME/draw_runs/mnist_attn_paper --out=pretrained/mnist_attn

Takes the best checkpoint by validation -ELBO unless --step is given. The
folder's previous parameters are replaced; pretrained.json records the step,
epoch, recipe, commit and the valid and test -ELBO (all test images, and the
500-image subset that tests/pretrained_test.py checks against).
"""
import json
import os
import subprocess
import sys

# The repo root first on sys.path: this checkout's draw_jax, and configs/,
# whose files import each other as the package `configs`.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app
from absl import flags
from ml_collections import config_flags

from draw_jax import pretrained
from draw_jax import settings

config_flags.DEFINE_config_file('config', None, 'The run\'s configs/*.py file.')
flags.DEFINE_string('workdir', None, 'The training run to export from.')
flags.DEFINE_string('out', None, 'The pretrained/<name> folder to write.')
flags.DEFINE_integer('step', None, 'Checkpoint step; default: best by valid.')
flags.DEFINE_string('commit', None, 'The run\'s code commit; default: '
                    '<workdir>/COMMIT, written by scripts/long_run.sh.')
flags.mark_flags_as_required(['config', 'workdir', 'out'])
FLAGS = flags.FLAGS


def _commit(workdir):
  path = os.path.join(workdir, 'COMMIT')
  if os.path.exists(path):
    with open(path) as f:
      return f.read().strip()
  return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True,
                        text=True, check=False).stdout.strip() or 'unknown'


def main(argv):
  del argv
  try:
    metadata = pretrained.export_run(
        settings.parse(FLAGS.config), FLAGS.workdir, FLAGS.out, FLAGS.step,
        FLAGS.commit or _commit(FLAGS.workdir))
  except (OSError, ValueError) as error:
    sys.exit(f'error: {error}')
  print(json.dumps(metadata, indent=2))


if __name__ == '__main__':
  app.run(main)
