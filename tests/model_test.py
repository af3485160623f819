"""The DRAW module: scan against a Python loop, shapes, and exact loss values."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import model_configs
from configs import smoke
from draw_jax import model as draw_model
from draw_jax import objectives
from draw_jax import settings

TINY = dict(T=4, enc_size=32, dec_size=32, z_size=6, read_n=3, write_n=4)


def _model(seed=0, **overrides):
  config = model_configs.draw(**{**TINY, **overrides})
  return draw_model.Draw(config, rngs=nnx.Rngs(seed))


def _images(config, batch=3, seed=1):
  shape = (batch,) + config.image_shape
  return jax.random.bernoulli(jax.random.key(seed), 0.3, shape).astype(jnp.float32)


def _zero_out(layer):
  layer.kernel[...] = jnp.zeros_like(layer.kernel[...])
  layer.bias[...] = jnp.zeros_like(layer.bias[...])


@pytest.mark.parametrize('use_attention', [True, False])
def test_scan_equals_python_loop(use_attention):
  model = _model(attention=use_attention, height=20, width=28)
  images = _images(model.config)
  key = jax.random.key(7)
  output = model(images, key)
  noise = jax.random.normal(key, (model.config.T, 3, model.config.z_size))
  state = model.initial_state(3)
  # Compiled once, not dispatched op by op: the loop is still Python's.
  step = nnx.jit(lambda model, state, noise: model.step(state, images, noise))
  for t in range(model.config.T):
    state, per_step = step(model, state, noise[t])
    np.testing.assert_allclose(output.canvas_logits_per_step[t],
                               per_step['canvas_logits'].reshape(images.shape),
                               rtol=1e-5, atol=1e-5)
    # The KL is taken after the scan, from the stacked posteriors.
    np.testing.assert_allclose(output.posterior_mean[t], per_step['mean'],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        output.kl_per_step[t],
        objectives.gaussian_kl(per_step['mean'], per_step['log_std']),
        rtol=1e-5)
  # The step carries the canvas flat, in the image's [H, W, C] order.
  np.testing.assert_allclose(output.canvas_logits,
                             state.canvas_logits.reshape(images.shape),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('use_attention', [True, False])
@pytest.mark.parametrize('height,width,channels', [(20, 28, 1), (16, 16, 3)])
def test_output_shapes(use_attention, height, width, channels):
  model = _model(attention=use_attention, height=height, width=width,
                 channels=channels)
  images = _images(model.config, batch=2)
  output = model(images, jax.random.key(0))
  T, z = model.config.T, model.config.z_size
  assert output.canvas_logits_per_step.shape == (T, 2, height, width, channels)
  assert output.canvas_logits.shape == (2, height, width, channels)
  assert output.kl_per_step.shape == (T, 2)
  assert output.posterior_mean.shape == output.posterior_log_std.shape == (T, 2, z)
  generated = model.generate(jax.random.key(1), 5)
  assert generated.canvas_logits_per_step.shape == (T, 5, height, width, channels)
  if use_attention:
    assert output.read_params.center_x.shape == (T, 2)
    assert output.write_params.gamma.shape == (T, 2)
    assert generated.write_params.stride.shape == (T, 5)
  else:
    assert output.read_params is None and generated.write_params is None


def test_kl_is_non_negative():
  model = _model()
  output = model(_images(model.config, batch=8), jax.random.key(3))
  assert np.all(output.kl_per_step >= 0)
  mean = jax.random.normal(jax.random.key(0), (100, 7)) * 3
  log_std = jax.random.normal(jax.random.key(1), (100, 7)) * 2
  assert np.all(objectives.gaussian_kl(mean, log_std) >= 0)


def test_kl_constant_is_half_per_latent_dimension():
  # mu = 0, sigma = 1 gives exactly 0; mu = 1 in every one of |z| dims gives |z|/2.
  zeros = jnp.zeros((2, 100))
  np.testing.assert_array_equal(objectives.gaussian_kl(zeros, zeros), 0.0)
  np.testing.assert_allclose(objectives.gaussian_kl(zeros + 1.0, zeros), 50.0)


def test_model_kl_is_exactly_zero_for_standard_normal_posterior():
  model = _model()
  _zero_out(model.posterior)  # mu = 0, log sigma = 0
  output = model(_images(model.config), jax.random.key(2))
  np.testing.assert_array_equal(output.kl_per_step, 0.0)


@pytest.mark.parametrize('use_attention', [True, False])
def test_zero_canvas_costs_hw_ln2(use_attention):
  model = _model(attention=use_attention)
  _zero_out(model.posterior)
  _zero_out(model.write_patch)
  images = _images(model.config, batch=4)
  loss = objectives.negative_elbo(model(images, jax.random.key(0)), images)
  np.testing.assert_allclose(loss.total, 28 * 28 * math.log(2.0), rtol=1e-6)
  assert 28 * 28 * math.log(2.0) == pytest.approx(543.4, abs=0.05)


def test_importance_weighted_bound_k1_matches_elbo_and_k50_is_tighter():
  model = _model(T=3)
  images = _images(model.config, batch=2)
  num_draws = 300

  def elbo_mean(key):
    return objectives.negative_elbo(model(images, key), images).total

  keys = jax.random.split(jax.random.key(11), num_draws)
  elbos = np.asarray(jax.jit(jax.vmap(elbo_mean))(keys))

  iw = jax.jit(
      lambda key, k: objectives.importance_weighted_nll(model, images, key, k, 10),
      static_argnums=1)

  iw1 = np.stack([iw(k, 1) for k in keys[:num_draws]])
  iw50 = np.stack([iw(k, 50) for k in keys[:40]])
  # Same expectation for K = 1 (to within 4 standard errors of the difference).
  stderr = np.sqrt(iw1.var(0) / num_draws + elbos.var(0) / num_draws)
  assert np.all(np.abs(iw1.mean(0) - elbos.mean(0)) < 4 * stderr + 1e-3)
  # A bound that tightens with K: its mean cannot rise from K = 1 to K = 50.
  assert np.all(iw50.mean(0) <= iw1.mean(0))


def test_importance_weighted_passes_cover_k():
  assert objectives.largest_divisor_at_most(1000, 128) == 125
  assert objectives.largest_divisor_at_most(7, 4) == 1


def _loss_and_grads(model, images, key):
  graphdef, params = nnx.split(model)

  def loss(params):
    output = nnx.merge(graphdef, params)(images, key)
    return jnp.mean(objectives.negative_elbo(output, images).total)

  return jax.jit(jax.value_and_grad(loss))(params)  # one program, not op by op


@pytest.mark.parametrize('remat', ['dots', 'full'])
@pytest.mark.parametrize('use_attention', [True, False])
def test_remat_changes_neither_loss_nor_gradients(remat, use_attention):
  model = _model(attention=use_attention)
  images, key = _images(model.config), jax.random.key(3)
  loss, grads = _loss_and_grads(_model(attention=use_attention, remat=remat),
                                images, key)
  expected_loss, expected_grads = _loss_and_grads(
      _model(attention=use_attention, remat='none'), images, key)
  np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               grads, expected_grads)


@pytest.mark.parametrize('remat,wrapped', [('none', False), ('dots', True),
                                           ('full', True)])
def test_remat_policy_wraps_the_scan_step(remat, wrapped):
  model = _model(remat=remat)
  images = _images(model.config)
  jaxpr = str(jax.make_jaxpr(lambda x: model(x, jax.random.key(0)).canvas_logits)(
      images))
  assert ('remat' in jaxpr) == wrapped


@pytest.mark.parametrize('bad', [dict(T=0), dict(read_n=29), dict(write_n=0),
                                 dict(z_size=-2), dict(compute_dtype='int8'),
                                 dict(remat='some'), dict(scan_unroll=0),
                                 dict(likelihood='gaussian')])
def test_bad_config_is_rejected_with_its_name(bad):
  config = smoke.get_config()
  config.model.update(bad)
  with pytest.raises(settings.ConfigError, match=f'model.{next(iter(bad))}'):
    settings.parse(config)


def test_read_larger_than_the_image_is_fine_without_attention():
  config = smoke.get_config()
  config.model.update(attention=False, read_n=29)
  assert settings.parse(config).model.read_n == 29
