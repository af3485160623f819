"""Does the write attention move between the two digits of a scene?

  python scripts/two_digit_attention.py --config=configs/mnist_two_digit.py --workdir=DIR --examples 1000 --gif docs/two_digit_reconstructions.gif

Reconstructs two-digit test scenes with a trained run's checkpoint (the
training pass, z from the posterior) and follows the write window's centre
(gx, gy) over the T steps. The test scenes' digit positions are known
(mnist_scenes.two_digit_layout), so each step's write is placed at the
digit whose centre is nearer, or at neither when it is more than half a digit
from both; only scenes whose digit centres are 20 pixels apart or more count.
Reports the share of scenes whose writes visit both digits, the mean number
of moves from one digit to the other, and the share of the canvas change
(sum of |c_t - c_{t-1}|) written at each; then, as a control, the same
figures with each scene's writes scored against another scene's digits.
--gif writes a few of the reconstructions step by step, with the write
windows drawn.

--config must be the run's config (with the same overrides). The last line
printed is one JSON object.
"""
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from flax import nnx

from draw_jax import checkpoints
from draw_jax import datasets
from draw_jax import input_pipeline
from draw_jax import mnist_scenes
from draw_jax import model as draw_model
from draw_jax import settings as settings_lib
from draw_jax import visualize
# pylint: enable=g-import-not-at-top,wrong-import-position

_CHUNK = 200  # scenes per reconstruction call, to bound memory
_GIF_SCENES = 16
NEITHER, FIRST, SECOND = 0, 1, 2
_PLACES = (('first', FIRST), ('second', SECOND), ('neither', NEITHER))
# Only scenes whose digits' centres are this far apart (pixels) count: two
# 28x28 digits on a 60x60 canvas overlap more often than not, and writes
# between two close digits cannot be told apart.
MIN_SEPARATION = 20.0
# A write centred more than this from both digits' centres is in neither:
# half a digit's width.
DIGIT_RADIUS = mnist_scenes.DIGIT_SIZE / 2.0


def define_flags():
  config_flags.DEFINE_config_file('config', None, "The run's config file.",
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, "The run's workdir.")
  flags.DEFINE_integer('examples', 1000, 'Test scenes to reconstruct.',
                       lower_bound=1)
  flags.DEFINE_string('gif', '', 'If set, a GIF of a few reconstructions.')
  flags.DEFINE_integer('seed', 0, 'Seed of the posterior noise.')
  flags.mark_flags_as_required(['config', 'workdir'])


def digit_centres(corners_Nx2x2, size=mnist_scenes.DIGIT_SIZE):
  """[n, 2, 2]: each digit box's centre as (y, x) in 1-based pixel units.

  The filterbank's coordinates are 1-based (attention.py): a box whose
  top-left pixel is 0-based (row, col) spans row + 0.5 to row + size + 0.5.
  """
  return corners_Nx2x2 + 0.5 + size / 2.0


def digits_apart(corners_Nx2x2, min_distance=MIN_SEPARATION):
  """[n] bool: the two digits' centres are at least min_distance apart."""
  centres = digit_centres(corners_Nx2x2)
  return np.hypot(*(centres[:, 0] - centres[:, 1]).T) >= min_distance


def nearest_digit(center_x_TxN, center_y_TxN, corners_Nx2x2,
                  radius=DIGIT_RADIUS):
  """[T, n]: FIRST or SECOND, the digit whose centre is nearer the write's
  centre, or NEITHER when both are more than radius pixels away."""
  centres_Nx2x2 = digit_centres(corners_Nx2x2)
  distances_TxNx2 = np.hypot(
      center_y_TxN[..., None] - centres_Nx2x2[None, :, :, 0],
      center_x_TxN[..., None] - centres_Nx2x2[None, :, :, 1])
  nearer_TxN = np.where(distances_TxNx2[..., 0] <= distances_TxNx2[..., 1],
                        FIRST, SECOND)
  return np.where(distances_TxNx2.min(-1) <= radius, nearer_TxN, NEITHER)


def moves_between_digits(where_TxN):
  """[n]: how often consecutive writes at a digit change digit (NEITHER
  steps skipped)."""
  moves = np.zeros(where_TxN.shape[1], np.int32)
  for scene in range(where_TxN.shape[1]):
    boxes = where_TxN[:, scene]
    boxes = boxes[boxes != NEITHER]
    moves[scene] = np.count_nonzero(boxes[1:] != boxes[:-1])
  return moves


def canvas_change(canvas_logits_TxNxHxWxC):
  """[T, n]: sum over pixels of |c_t - c_{t-1}|, with c_0 = 0."""
  previous = np.concatenate([np.zeros_like(canvas_logits_TxNxHxWxC[:1]),
                             canvas_logits_TxNxHxWxC[:-1]])
  change = np.abs(canvas_logits_TxNxHxWxC - previous)
  return change.reshape(change.shape[0], change.shape[1], -1).sum(-1)


def summarise(where_TxN, change_TxN):
  """The figures over scenes: visits to both digits, moves, change per place."""
  visits_first = np.any(where_TxN == FIRST, axis=0)
  visits_second = np.any(where_TxN == SECOND, axis=0)
  total_change = change_TxN.sum()
  return {
      'scenes': int(where_TxN.shape[1]),
      'both_digits_visited': float(np.mean(visits_first & visits_second)),
      'mean_moves_between_digits': float(np.mean(
          moves_between_digits(where_TxN))),
      'canvas_change_share': {
          name: float(change_TxN[where_TxN == place].sum() / total_change)
          for name, place in _PLACES},
      'step_share': {name: float(np.mean(where_TxN == place))
                     for name, place in _PLACES},
  }


def reconstruct(run, settings, images, seed):
  """(canvas logits [T, n, H, W, C], write AttentionParams with fields [T, n]),
  from the training pass, in chunks of _CHUNK scenes."""

  def training_pass(params, images, key):
    binary = input_pipeline.binarize(images, settings.data.binarization, key)
    output = nnx.merge(run.graphdef, params)(binary, key)
    return output.canvas_logits_per_step, output.write_params

  reconstruct_chunk = jax.jit(training_pass)
  key = jax.random.key(seed)
  per_step = [reconstruct_chunk(run.params, images[start:start + _CHUNK],
                                jax.random.fold_in(key, start))
              for start in range(0, len(images), _CHUNK)]
  return jax.tree.map(lambda *parts: np.concatenate(parts, axis=1), *per_step)


def analyse(config, workdir, examples, seed=0, gif_path=''):
  """The figures (a dict) for the run's checkpoint; optionally the GIF."""
  if config.data.name != 'mnist_two_digit':
    raise ValueError(f'the config must be a mnist_two_digit run, not '
                     f'data.name={config.data.name!r}')
  settings = settings_lib.parse(config)
  run = checkpoints.load_trained(settings.model, workdir, settings.eval.step)
  data = settings.data
  test = datasets.load_splits(data.name, data.dir, data.max_examples,
                              only=('test',)).test
  count = min(examples, len(test))
  _, corners = mnist_scenes.two_digit_layout(
      len(test), mnist_scenes.SPLIT_SEEDS['test'], run.model_config.height)
  apart = np.flatnonzero(digits_apart(corners[:count]))
  if not apart.size:
    raise ValueError(f'none of the first {count} test scenes has its digits '
                     f'{MIN_SEPARATION} pixels apart; use more examples')
  canvases, write_params = reconstruct(run, settings, test[apart], seed)
  where_TxN = nearest_digit(write_params.center_x, write_params.center_y,
                            corners[apart])
  change_TxN = canvas_change(canvases)
  result = summarise(where_TxN, change_TxN)
  # The control: the same writes scored against another scene's digits. A
  # model whose writes follow the digits scores far lower here.
  other_scene = np.roll(corners[apart], 1, axis=0)
  result['control_other_scenes_digits'] = summarise(
      nearest_digit(write_params.center_x, write_params.center_y, other_scene),
      change_TxN)
  result.update(step=run.step, T=run.model_config.T, examples=count)
  if gif_path:
    picked = slice(0, _GIF_SCENES)
    visualize.save_canvas_gif(
        gif_path, np.asarray(draw_model.canvas_images(
            canvases[:, picked], run.model_config.channels)),
        write_params=jax.tree.map(lambda field: field[:, picked],
                                  write_params),
        write_n=run.model_config.write_n, upscale=2)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  result = analyse(flags.FLAGS.config, flags.FLAGS.workdir,
                   flags.FLAGS.examples, flags.FLAGS.seed, flags.FLAGS.gif)
  print(f'step {result["step"]}: of {result["scenes"]} test scenes with the '
        f'digits apart, {result["both_digits_visited"]:.1%} have writes in '
        f'both digits, {result["mean_moves_between_digits"]:.2f} moves between '
        'them on average; canvas change written in digit 1, digit 2, '
        'neither: ' + ', '.join(f'{share:.1%}' for share in
                                result['canvas_change_share'].values()),
        flush=True)
  control = result['control_other_scenes_digits']
  print(f'control, scored against another scene\'s digits: '
        f'{control["both_digits_visited"]:.1%} in both, '
        f'{control["mean_moves_between_digits"]:.2f} moves, '
        f'{control["canvas_change_share"]["neither"]:.1%} of the change in '
        'neither', flush=True)
  if flags.FLAGS.gif:
    print(f'wrote {flags.FLAGS.gif}', flush=True)
  print(json.dumps(dict(result, workdir=flags.FLAGS.workdir)), flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
