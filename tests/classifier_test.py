"""The glimpse classifier: shapes, reuse of attention.read, scan, learning."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import model_configs
from configs import cluttered_mnist_cls
from draw_jax import attention
from draw_jax import classifier
from draw_jax import settings
from draw_jax import visualize

TINY = dict(height=28, width=28, T=3, hidden_size=32, glimpse=5, num_classes=4)


def _model(seed=0, **overrides):
  config = model_configs.glimpse_classifier(**{**TINY, **overrides})
  return classifier.GlimpseClassifier(config, rngs=nnx.Rngs(seed))


def _images(config, batch=3, seed=1):
  shape = (batch, config.height, config.width, config.channels)
  return jax.random.uniform(jax.random.key(seed), shape)


def _labels(config, batch=3, seed=2):
  return jax.random.randint(jax.random.key(seed), (batch,), 0,
                            config.num_classes)


@pytest.mark.parametrize('channels', [1, 3])
def test_output_shapes_and_dtypes(channels):
  model = _model(height=20, width=28, channels=channels)
  output = model(_images(model.config, batch=2))
  T, N = model.config.T, model.config.glimpse
  assert output.logits.shape == (2, 4) and output.logits.dtype == jnp.float32
  assert np.all(np.isfinite(output.logits))
  assert output.glimpses.shape == (T, 2, N, N, channels)
  for field in output.glimpse_params:
    assert field.shape == (T, 2)


def test_gradients_reach_every_parameter():
  model = _model()
  images, labels = _images(model.config), _labels(model.config)
  loss = lambda m: jnp.mean(classifier.cross_entropy(m(images).logits, labels))
  grads = nnx.grad(loss)(model)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(grad)), path
    assert np.any(grad != 0), path


def test_first_glimpse_is_attention_read_with_gamma_from_zero_state():
  model = _model(height=30, width=40)
  c = model.config
  # gamma = 2, so a read that ignored gamma would be off by a factor of two:
  # the layer's raw output is atanh(log 2), which the read's tanh undoes.
  bias = model.attention.bias[...]
  model.attention.bias[...] = bias.at[4].set(math.atanh(math.log(2.0)))
  images = _images(c)
  output = model(images)
  np.testing.assert_allclose(output.glimpse_params.gamma[0], 2.0, rtol=1e-5)
  raw = model.attention(jnp.zeros((1, c.hidden_size)))[0]
  params = attention.attention_params(raw.at[4].set(math.log(2.0)), c.height,
                                      c.width, c.glimpse)
  for i in range(images.shape[0]):
    expected = attention.read(images[i], params, c.glimpse)
    np.testing.assert_allclose(output.glimpses[0, i], expected, rtol=1e-5,
                               atol=1e-6)


def test_glimpse_intensity_stays_within_one_e_of_one():
  model = _model()
  bias = model.attention.bias[...]
  for raw_log_gamma in (-50.0, 50.0):
    model.attention.bias[...] = bias.at[4].set(raw_log_gamma)
    gamma = model(_images(model.config)).glimpse_params.gamma
    np.testing.assert_allclose(gamma, math.e ** math.copysign(1, raw_log_gamma),
                               rtol=1e-5)


def test_initial_glimpse_spans_whole_image_with_blurring_filters():
  model = _model(height=30, width=40, glimpse=5)
  output = model(_images(model.config))
  params = attention.AttentionParams(*(f[0, 0] for f in output.glimpse_params))
  stride = 39.0 / 4.0
  np.testing.assert_allclose(params.center_x, 20.5, rtol=1e-6)
  np.testing.assert_allclose(params.center_y, 15.5, rtol=1e-6)
  np.testing.assert_allclose(params.stride, stride, rtol=1e-6)
  np.testing.assert_allclose(params.sigma2, (stride / 2.0)**2, rtol=1e-5)
  np.testing.assert_allclose(params.gamma, 1.0, rtol=1e-6)
  # Blurring filters average the image: a constant image reads as itself.
  constant = model(jnp.full((1, 30, 40, 1), 0.25)).glimpses[0, 0]
  np.testing.assert_allclose(constant, 0.25, rtol=1e-5)


def test_scan_equals_python_loop():
  model = _model(T=4)
  # Random attention weights, so later glimpses depend on the state.
  model.attention.kernel[...] = 0.3 * jax.random.normal(
      jax.random.key(5), model.attention.kernel[...].shape)
  images = _images(model.config)
  output = model(images)
  state = model.initial_state(images.shape[0])
  for t in range(model.config.T):
    state, per_step = model.step(state, images)
    np.testing.assert_allclose(output.glimpses[t], per_step['glimpses'],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(output.glimpse_params.center_x[t],
                               per_step['glimpse_params'].center_x, rtol=1e-5)
  assert not np.allclose(output.glimpses[0], output.glimpses[-1])
  np.testing.assert_allclose(output.logits, model.logits(state), rtol=1e-5,
                             atol=1e-6)


def test_scan_unroll_changes_nothing():
  images = _images(_model().config)
  np.testing.assert_allclose(_model(T=4, scan_unroll=2)(images).logits,
                             _model(T=4)(images).logits, rtol=1e-5, atol=1e-6)


def _loss_and_grads(model, images, labels):
  graphdef, params = nnx.split(model)

  def loss(params):
    logits = nnx.merge(graphdef, params)(images).logits
    return jnp.mean(classifier.cross_entropy(logits, labels))

  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize('remat', ['none', 'full'])
def test_remat_changes_neither_loss_nor_gradients(remat):
  config = _model().config
  images, labels = _images(config), _labels(config)
  loss, grads = _loss_and_grads(_model(remat=remat), images, labels)
  expected_loss, expected_grads = _loss_and_grads(_model(), images, labels)
  np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               grads, expected_grads)


def test_bfloat16_compute_is_finite_and_close_to_float32():
  images = _images(_model().config, batch=4)
  exact = _model()(images).logits
  rounded = _model(compute_dtype='bfloat16')(images).logits
  assert rounded.dtype == jnp.float32
  assert np.all(np.isfinite(rounded))
  np.testing.assert_allclose(rounded, exact, atol=5e-3)


@pytest.mark.parametrize('path,value', [
    ('classifier.glimpse', 101), ('classifier.T', 0),
    ('classifier.hidden_size', 0), ('data.num_classes', 0),
    ('classifier.compute_dtype', 'int8'), ('classifier.remat', 'some')])
def test_bad_config_is_rejected_with_its_name(path, value):
  config = cluttered_mnist_cls.get_config()
  group, field = path.split('.')
  config[group][field] = value
  with pytest.raises(settings.ConfigError, match=path):
    settings.parse(config)


def test_losses_by_hand():
  logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
  labels = jnp.array([0, 1])
  np.testing.assert_allclose(classifier.is_wrong(logits, labels), [0.0, 1.0])
  expected = [math.log(1 + 2 * math.exp(-2.0)),
              math.log(2 + math.exp(5.0))]
  np.testing.assert_allclose(classifier.cross_entropy(logits, labels),
                             expected, rtol=1e-6)


def _left_or_right_squares(key, batch, size=32, square=6):
  """Label 0: a bright square in the left half; label 1: in the right half."""
  label_key, row_key, col_key = jax.random.split(key, 3)
  labels = jax.random.randint(label_key, (batch,), 0, 2)
  half = size // 2
  rows = jax.random.randint(row_key, (batch,), 0, size - square + 1)
  cols = (jax.random.randint(col_key, (batch,), 0, half - square + 1) +
          labels * half)
  pixels = jnp.arange(size)
  in_rows = (pixels[None, :] >= rows[:, None]) & (
      pixels[None, :] < rows[:, None] + square)
  in_cols = (pixels[None, :] >= cols[:, None]) & (
      pixels[None, :] < cols[:, None] + square)
  images = (in_rows[:, :, None] & in_cols[:, None, :]).astype(jnp.float32)
  return images[..., None], labels


def test_learns_which_half_a_square_is_in():
  model = _model(height=32, width=32, T=2, glimpse=4, num_classes=2)
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, key):
    images, labels = _left_or_right_squares(key, 32)
    loss = lambda m: jnp.mean(classifier.cross_entropy(m(images).logits,
                                                       labels))
    optimizer.update(model, nnx.grad(loss)(model))

  for step in range(150):
    train_step(model, optimizer, jax.random.fold_in(jax.random.key(0), step))
  images, labels = _left_or_right_squares(jax.random.key(1), 500)
  error = float(jnp.mean(classifier.is_wrong(model(images).logits, labels)))
  assert error < 0.05  # chance is 0.5


# ---- visualize.glimpse_boxes_image ------------------------------------------


def test_glimpse_boxes_image_draws_each_steps_box_in_its_cell():
  n, num_steps, size, upscale, glimpse = 2, 3, 10, 2, 3
  images = np.zeros((n, size, size, 1))
  # Step t: a box centred at 1-based pixel 5.5 with stride t + 1, so its
  # 0-based corners are 4.5 -/+ (t + 1).
  stride_TxN = np.broadcast_to(np.arange(1.0, num_steps + 1)[:, None],
                               (num_steps, n))
  centre_TxN = np.full((num_steps, n), 5.5)
  params = attention.AttentionParams(centre_TxN, centre_TxN,
                                     np.ones((num_steps, n)), stride_TxN,
                                     np.ones((num_steps, n)))
  grid = visualize.glimpse_boxes_image(images, params, glimpse, upscale)
  cell = size * upscale
  assert grid.dtype == np.uint8
  assert grid.shape == (n * cell + n - 1, num_steps * cell + num_steps - 1, 3)
  green = np.all(grid == visualize.READ_COLOUR, axis=-1)
  for i in range(n):
    for t in range(num_steps):
      top, left = i * (cell + 1), t * (cell + 1)
      box = green[top:top + cell, left:left + cell]
      # Corners 4.5 -/+ (t + 1) round to upscaled rows (3.5 - t) * 2 and
      # (6.5 + t) * 2 - 1, both exact here.
      first, last = int((3.5 - t) * upscale), int((6.5 + t) * upscale) - 1
      expected = np.zeros_like(box)
      expected[[first, last], first:last + 1] = True
      expected[first:last + 1, [first, last]] = True
      np.testing.assert_array_equal(box, expected)


def test_glimpse_boxes_image_rejects_params_for_other_images():
  params = attention.AttentionParams(*np.ones((5, 4, 3)))
  with pytest.raises(ValueError):
    visualize.glimpse_boxes_image(np.zeros((2, 8, 8, 1)), params, 3)
