"""How recognisable are a two-digit run's samples? A number, not a picture.

  python scripts/two_digit_recognisable.py --config=configs/mnist_two_digit.py --workdir=DIR --samples 1000

Trains a small MNIST classifier, an MLP 784-512-11 (ten epochs of Adam on
the 50,000 training digits scaled to [0, 1], about 25 s of CPU; 98.1% on the
MNIST test digits, reported each run), and lets it read two 28x28 crops of
each sample's final canvas (probabilities in [0, 1]). Half of its training
digits carry part of a neighbouring digit, as crops of two-digit scenes do,
and an eleventh class, NOT_A_DIGIT, learns shuffled digits, noise and greys,
so that a canvas of noise does not read as a confident digit.

The crops are found from the image's ink alone: a 2-means of the pixels
weighted by their ink gives two centres of mass, and each crop is the 28x28
window centred there (clipped inside the canvas), as MNIST centres its
digits. The same rule finds the crops of the first --samples real test scenes
(intensities / 255): the ceiling, what drawings as recognisable as the data
reach. A sample counts as recognisable when both crops are classified as
digits with a softmax probability above --threshold; also reported are the
share with at least one such crop and the mean confidence over crops. On the
first 1000 test scenes: 47% with both digits at p > 0.9 (78% of the scenes
whose digits are 20 pixels apart); crops at the true digit positions give
58%, since the digits overlap in most scenes. Blank, grey and noise canvases
give 0%.

As a check that the ink windows are where the write window drew, each
sample's write centres (gy, gx) are split into two groups by the same
weighted 2-means, each step weighted by its canvas change |c_t - c_{t-1}|
(image space, c_0 the blank canvas); the write rule agrees when the two
groups' centres lie within half a digit of the two ink centres, one each.

--config must be the run's config (for the data). The last line printed is
one JSON object.
"""
import json
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from ml_collections import config_flags

import draw_jax
from draw_jax import datasets
from draw_jax import mnist_scenes
from draw_jax import model as draw_model
from draw_jax import settings as settings_lib
import two_digit_attention
# pylint: enable=g-import-not-at-top,wrong-import-position

SIZE = mnist_scenes.DIGIT_SIZE
_CHUNK = 200  # samples per generation call: T canvases of 200 are 92 MB
_BATCH = 128
# 10 epochs of a 512-unit MLP with a cosine decay: 98.1% on the MNIST test
# digits in about 25 s of CPU; 2 epochs of 256 units reached 96.1%.
_EPOCHS = 10
# The classifier's eleventh class. Trained on digits alone, it read a grey
# canvas as a digit with p = 0.999, and uniform noise as two digits in 94%
# of the canvases; with this class, in none.
NOT_A_DIGIT = 10


def define_flags():
  config_flags.DEFINE_config_file('config', None, "The run's config file.",
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'A two-digit run or pretrained folder.')
  flags.DEFINE_integer('samples', 1000, 'Samples (and real test scenes).',
                       lower_bound=1)
  flags.DEFINE_integer('seed', 0, 'Seed of the samples and the classifier.')
  flags.DEFINE_float('threshold', 0.9, 'Softmax probability that counts as '
                     'recognised.')
  flags.DEFINE_integer('classifier_digits', 0, 'If > 0, the classifier trains '
                       'and is tested on only this many digits: a quick look.',
                       lower_bound=0)
  flags.mark_flags_as_required(['config', 'workdir'])


class DigitClassifier(nnx.Module):
  """An MLP on 28x28 images in [0, 1]: logits [n, 11], the ten digits and
  NOT_A_DIGIT."""

  def __init__(self, hidden=512, *, rngs):
    self.hidden = nnx.Linear(SIZE * SIZE, hidden, rngs=rngs)
    self.output = nnx.Linear(hidden, NOT_A_DIGIT + 1, rngs=rngs)

  def __call__(self, images_NxSxS):
    flat = images_NxSxS.reshape(images_NxSxS.shape[0], -1)
    return self.output(jax.nn.relu(self.hidden(flat)))


def not_digits(digits_BxSxS, key):
  """[b, 28, 28]: images like digits in one way but no digit: a digit's
  pixels shuffled (its ink, no shape), uniform noise up to a random
  brightness, or one random grey."""
  order_key, noise_key, level_key, kind_key = jax.random.split(key, 4)
  flat = digits_BxSxS.reshape(digits_BxSxS.shape[0], -1)
  shuffled = jnp.take_along_axis(flat, jnp.argsort(jax.random.uniform(
      order_key, flat.shape), axis=-1), axis=-1)
  level = jax.random.uniform(level_key, (flat.shape[0], 1))
  noise = jax.random.uniform(noise_key, flat.shape) * level
  kind = jax.random.randint(kind_key, (flat.shape[0], 1), 0, 3)
  fake = jnp.where(kind == 0, shuffled, jnp.where(kind == 1, noise, level))
  return fake.reshape(digits_BxSxS.shape)


def with_neighbour(digits_BxSxS, key):
  """[b, 28, 28]: each digit with the next one of the batch added 12 to 28
  pixels away in each direction, clipped: as two-digit scenes' crops are."""
  shift_key, sign_key = jax.random.split(key)
  shift = jax.random.randint(shift_key, (digits_BxSxS.shape[0], 2), 12,
                             SIZE + 1)
  shift *= jnp.where(jax.random.bernoulli(sign_key, 0.5, shift.shape), 1, -1)
  padded = jnp.pad(jnp.roll(digits_BxSxS, 1, axis=0),
                   ((0, 0), (SIZE, SIZE), (SIZE, SIZE)))
  moved = jax.vmap(lambda image, shift: jax.lax.dynamic_slice(
      image, SIZE - shift, (SIZE, SIZE)))(padded, shift)
  return jnp.minimum(digits_BxSxS + moved, 1.0)


def training_batch(digits_BxSxS, labels_B, key):
  """(images [2b, 28, 28], labels [2b]): the digits in [0, 1], the second
  half with a neighbour's part, then b not_digits."""
  neighbour_key, fake_key = jax.random.split(key)
  digits = digits_BxSxS.astype(jnp.float32) / 255.0
  half = digits.shape[0] // 2
  digits = jnp.concatenate(
      [digits[:half], with_neighbour(digits, neighbour_key)[half:]])
  return (jnp.concatenate([digits, not_digits(digits, fake_key)]),
          jnp.concatenate([labels_B, jnp.full_like(labels_B, NOT_A_DIGIT)]))


def train_classifier(digits, labels, epochs=_EPOCHS, seed=0):
  """A DigitClassifier fit to uint8 digits [n, 28, 28(, 1)] and their
  labels, as training_batch makes them afresh each step."""
  graphdef, params = nnx.split(DigitClassifier(rngs=nnx.Rngs(seed)))
  batches = max(len(digits) // _BATCH, 1)
  optimizer = optax.adam(optax.cosine_decay_schedule(1e-3, epochs * batches))

  def loss(params, digits, labels, key):
    images, targets = training_batch(digits, labels, key)
    return optax.softmax_cross_entropy_with_integer_labels(
        nnx.merge(graphdef, params)(images), targets).mean()

  def step(carry, batch):
    params, state = carry
    updates, state = optimizer.update(jax.grad(loss)(params, *batch), state)
    return (optax.apply_updates(params, updates), state), None

  # One compiled scan per epoch: a Python loop of steps costs more in dispatch.
  epoch = jax.jit(lambda carry, batches: jax.lax.scan(step, carry,
                                                      batches)[0])
  digits = np.asarray(digits).reshape(-1, SIZE, SIZE)
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed)
  carry = (params, optimizer.init(params))
  for index in range(epochs):
    order = rng.permutation(len(digits))[:batches * _BATCH].reshape(batches, -1)
    keys = jax.random.split(jax.random.fold_in(key, index), batches)
    carry = epoch(carry, (digits[order], np.asarray(labels)[order], keys))
  return nnx.merge(graphdef, carry[0])


def classify(classifier, images_NxSxS):
  """(confidence [n], label [n]): the largest of the ten digits' softmax
  probabilities, and the most likely class (NOT_A_DIGIT among them)."""
  probabilities = np.asarray(jax.nn.softmax(classifier(
      jnp.asarray(images_NxSxS, jnp.float32))))
  return probabilities[:, :NOT_A_DIGIT].max(-1), probabilities.argmax(-1)


def two_means(points_NxPx2, weights_NxP, iterations=20):
  """[n, 2, 2]: the centres of a weighted 2-means of each row's points, begun
  at the heaviest point and the point weighted-farthest from it."""
  index = np.arange(len(points_NxPx2))
  first = points_NxPx2[index, weights_NxP.argmax(1)]
  spread = weights_NxP * ((points_NxPx2 - first[:, None]) ** 2).sum(-1)
  centres = np.stack([first, points_NxPx2[index, spread.argmax(1)]], 1)
  for _ in range(iterations):
    distances = ((points_NxPx2[:, :, None] - centres[:, None]) ** 2).sum(-1)
    member = (distances.argmin(-1)[..., None] == np.arange(2)).astype(float)
    mass = np.einsum('np,npk->nk', weights_NxP, member)
    means = np.einsum('np,npk,npd->nkd', weights_NxP, member,
                      points_NxPx2) / np.maximum(mass, 1e-9)[..., None]
    centres = np.where(mass[..., None] > 0, means, centres)
  return centres


def ink_windows(images_NxHxW, size=SIZE):
  """(centres [n, 2, 2] as (y, x), 1-based as the write windows' centres,
  corners [n, 2, 2], 0-based (row, col) of each window's top-left pixel).

  The two digits are the two groups of a 2-means of the pixels weighted by
  ink: unlike the fullest 28x28 window, which straddles two close digits,
  it splits them, and its centres are centres of mass, where MNIST centres
  its digits.
  """
  height, width = images_NxHxW.shape[1:]
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  points = np.stack([rows, cols], -1).reshape(1, -1, 2).astype(np.float32) + 1
  centres = np.concatenate([
      two_means(np.broadcast_to(points, (len(chunk), *points.shape[1:])),
                chunk.reshape(len(chunk), -1).astype(np.float32))
      for chunk in np.split(images_NxHxW, range(_CHUNK, len(images_NxHxW),
                                                _CHUNK))])
  # A 1-based centre c is a 0-based top-left pixel c - 1 - (size - 1) / 2.
  corners = np.rint(centres - 1 - (size - 1) / 2).astype(int)
  return centres, np.clip(corners, 0, np.array([height, width]) - size)


def crop(images_NxHxW, corners_Nx2, size=SIZE):
  """[n, size, size]: each image's window whose top-left pixel is corners."""
  span = np.arange(size)
  rows = (corners_Nx2[:, 0, None] + span)[:, :, None]
  cols = (corners_Nx2[:, 1, None] + span)[:, None, :]
  return images_NxHxW[np.arange(len(images_NxHxW))[:, None, None], rows, cols]


def read_crops(classifier, images_NxHxW):
  """(ink window centres [n, 2, 2], confidence [n, 2], label [n, 2]): the
  classifier's reading of each image's two ink windows."""
  centres, corners = ink_windows(images_NxHxW)
  crops = np.stack([crop(images_NxHxW, corners[:, k]) for k in (0, 1)], 1)
  confidence, labels = classify(classifier, crops.reshape(-1, SIZE, SIZE))
  return centres, confidence.reshape(-1, 2), labels.reshape(-1, 2)


def summarise(confidence_Nx2, threshold):
  """The shares of images with both and with at least one crop confident."""
  confident = confidence_Nx2 > threshold
  return {'both_confident_share': float(confident.all(1).mean()),
          'one_confident_share': float(confident.any(1).mean()),
          'mean_confidence': float(confidence_Nx2.mean())}


def groups_agree(groups_Nx2x2, centres_Nx2x2,
                 radius=two_digit_attention.DIGIT_RADIUS):
  """[n] bool: the two write groups are each within radius of a different
  one of the two ink windows' centres (half a digit, as two_digit_attention
  places a write at a digit)."""
  apart = np.linalg.norm(groups_Nx2x2[:, :, None] - centres_Nx2x2[:, None],
                         axis=-1)
  straight = np.maximum(apart[:, 0, 0], apart[:, 1, 1])
  crossed = np.maximum(apart[:, 0, 1], apart[:, 1, 0])
  return np.minimum(straight, crossed) <= radius


def sample(model, count, seed):
  """(final canvases [n, H, W], write groups [n, 2, 2]), in chunks."""
  finals, groups = [], []
  for index, start in enumerate(range(0, count, _CHUNK)):
    chunk_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    drawing = model.sample_drawing(min(_CHUNK, count - start), chunk_seed)
    canvases = np.asarray(drawing.canvases)
    # The canvas starts at logits 0, so the first step's change is from 0.5.
    blank = np.asarray(draw_model.canvas_images(np.zeros_like(canvases[:1]),
                                                canvases.shape[-1]))
    change_TxN = two_digit_attention.canvas_change(
        np.concatenate([blank, canvases]))[1:]
    centres_TxNx2 = np.stack([drawing.write_params.center_y,
                              drawing.write_params.center_x], -1)
    finals.append(canvases[-1, ..., 0])
    groups.append(two_means(centres_TxNx2.transpose(1, 0, 2), change_TxN.T))
  return np.concatenate(finals), np.concatenate(groups)


def analyse(config, workdir, samples, seed=0, threshold=0.9,
            classifier_digits=0, classifier_epochs=_EPOCHS):
  """The figures (a dict); classifier_digits > 0 trains and tests the
  classifier on only that many digits of each split."""
  if config.data.name != 'mnist_two_digit':
    raise ValueError(f'the config must be a mnist_two_digit run, not '
                     f'data.name={config.data.name!r}')
  settings = settings_lib.parse(config)
  mnist = datasets.load_splits('mnist', settings.data.dir, classifier_digits,
                               only=('train', 'test'))
  classifier = train_classifier(mnist.train, mnist.train_labels,
                                classifier_epochs, seed)
  _, predicted = classify(classifier, mnist.test[..., 0] / 255.0)
  scenes = datasets.load_splits(
      settings.data.name, settings.data.dir, settings.data.max_examples,
      only=('test',)).test[:samples, ..., 0]
  model = draw_jax.load(workdir, settings.eval.step)
  if model.config.image_shape != (*scenes.shape[1:], 1):
    raise ValueError(f'the model draws {model.config.image_shape}; the '
                     f'two-digit scenes are {(*scenes.shape[1:], 1)}')
  finals, groups = sample(model, samples, seed)
  centres, confidence, _ = read_crops(classifier, finals)
  real = summarise(read_crops(classifier, scenes / 255.0)[1], threshold)
  return dict(
      summarise(confidence, threshold), samples=samples, step=model.step,
      threshold=threshold,
      write_rule_agreement=float(groups_agree(groups, centres).mean()),
      classifier_test_accuracy=float(np.mean(predicted == mnist.test_labels)),
      real_scenes=len(scenes),
      **{f'real_scenes_{name}': value for name, value in real.items()})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  result = analyse(flags.FLAGS.config, flags.FLAGS.workdir,
                   flags.FLAGS.samples, flags.FLAGS.seed, flags.FLAGS.threshold,
                   flags.FLAGS.classifier_digits)
  print(f'classifier: {result["classifier_test_accuracy"]:.2%} on the MNIST '
        'test digits', flush=True)
  for name, prefix in (('samples', ''), ('real test scenes', 'real_scenes_')):
    print(f'{name}: both digits recognised (p > {result["threshold"]}) in '
          f'{result[prefix + "both_confident_share"]:.1%}, at least one in '
          f'{result[prefix + "one_confident_share"]:.1%}, mean confidence '
          f'{result[prefix + "mean_confidence"]:.3f}', flush=True)
  print(f'the write windows agree with the ink windows in '
        f'{result["write_rule_agreement"]:.1%} of the samples', flush=True)
  print(json.dumps(dict(result, workdir=flags.FLAGS.workdir)), flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
