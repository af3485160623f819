"""scripts/torch_draw.py is draw_jax's network: same parameters, same -ELBO.

Runs only where torch is importable, i.e. in the venv of the script's
docstring with this project installed beside it:

  ~/venv-torch/bin/pip install -e .
  ~/venv-torch/bin/python -m pytest -q tests/torch_draw_test.py

Elsewhere (CI, the project's own environment) it is skipped.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip('torch')

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from draw_jax import attention
from draw_jax import layers
from draw_jax import model as draw_model
from draw_jax import objectives
import script_modules
# pylint: enable=g-import-not-at-top,wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
torch_draw = script_modules.load('torch_draw')


def _draw_config(height, width, attention_on, T=4):
  return draw_model.DrawConfig(
      height=height, width=width, channels=1, T=T, enc_size=16, dec_size=12,
      z_size=5, read_n=3, write_n=4, attention=attention_on,
      likelihood='bernoulli', compute_dtype='float32', scan_unroll=1,
      remat='none')


def _jax_model(config, seed=0):
  """A draw_jax model whose every parameter, biases too, is non-zero."""
  model = draw_model.Draw(config, rngs=nnx.Rngs(seed))
  params = nnx.state(model, nnx.Param)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  nnx.update(model, jax.tree.unflatten(treedef, [
      leaf + 0.2 * jax.random.normal(key, leaf.shape)
      for leaf, key in zip(leaves, keys)]))
  return model


def _tensor(array):
  return torch.from_numpy(np.array(array, dtype=np.float32))


def _read_order(config):
  """For each of torch's r_t positions, the index of draw_jax's r_t it holds.

  draw_jax's glimpses are [N rows, N columns, (x, x_hat)], torch's
  [N rows, (x, x_hat), N columns]; without attention draw_jax interleaves
  x and x_hat per pixel, torch puts x first.
  """
  if config.attention:
    jax_index = np.arange(config.read_size).reshape(config.read_n,
                                                    config.read_n, 2)
    return jax_index.transpose(0, 2, 1).reshape(-1)
  jax_index = np.arange(config.read_size).reshape(config.height * config.width, 2)
  return jax_index.T.reshape(-1)


def _lstm_weights(cell, in_features):
  """draw_jax's fused [inputs, h] gate kernel as nn.LSTMCell's parameters.

  Both order the gates (input, forget, candidate, output); torch's second
  bias is zero.
  """
  kernel = np.asarray(cell.gates.kernel[...])
  bias = np.asarray(cell.gates.bias[...])
  return dict(weight_ih=_tensor(kernel[:in_features].T),
              weight_hh=_tensor(kernel[in_features:].T),
              bias_ih=_tensor(bias), bias_hh=torch.zeros(bias.shape[0]))


def torch_model(jax_model):
  """torch_draw.DRAW holding jax_model's parameters."""
  c = jax_model.config
  model = torch_draw.DRAW(A=c.width, B=c.height, T=c.T, enc=c.enc_size,
                          dec=c.dec_size, z=c.z_size, read_n=c.read_n,
                          write_n=c.write_n, attention=c.attention)
  encoder = _lstm_weights(jax_model.encoder, c.read_size + c.dec_size)
  # Torch's r_t is a permutation of draw_jax's: permute the weights to match.
  read_weights = encoder['weight_ih'][:, :c.read_size]
  encoder['weight_ih'][:, :c.read_size] = read_weights[:, _read_order(c)]
  heads = [jax_model.write_patch]
  if c.attention:  # torch's one head: [write patch, write attn, read attn]
    heads += [jax_model.write_attention, jax_model.read_attention]
  state = {
      **{f'enc_rnn.{name}': value for name, value in encoder.items()},
      **{f'dec_rnn.{name}': value for name, value in
         _lstm_weights(jax_model.decoder, c.z_size).items()},
      'q.weight': _tensor(np.asarray(jax_model.posterior.kernel[...]).T),
      'q.bias': _tensor(jax_model.posterior.bias[...]),
      'dec_head.weight': _tensor(np.concatenate(
          [np.asarray(head.kernel[...]) for head in heads], axis=1).T),
      'dec_head.bias': _tensor(np.concatenate(
          [np.asarray(head.bias[...]) for head in heads])),
  }
  model.load_state_dict(state)
  return model


def _binary_images(key, batch, height, width):
  return jax.random.bernoulli(key, 0.3, (batch, height, width, 1)).astype(
      jnp.float32)


# Image shapes: square (torch builds F_X and F_Y together) and not.
SHAPES = [(28, 28), (12, 10)]


@pytest.mark.parametrize('height, width', SHAPES)
@pytest.mark.parametrize('attention_on', [True, False])
def test_same_parameters_and_noise_give_the_same_neg_elbo(height, width,
                                                         attention_on):
  config = _draw_config(height, width, attention_on)
  jax_model = _jax_model(config)
  images = _binary_images(jax.random.key(2), 6, height, width)
  key = jax.random.key(3)
  terms = jax_model.per_example_terms(images, None, key)
  # The noise draw_jax's training pass takes from its key (model.Draw).
  noise = jax.random.normal(key, (config.T, 6, config.z_size))
  with torch.no_grad():
    loss, recon, kl = torch_model(jax_model)(_tensor(images[..., 0]),
                                             _tensor(noise))
  np.testing.assert_allclose(recon.numpy(), terms['reconstruction'], rtol=1e-5)
  np.testing.assert_allclose(kl.numpy(), terms['kl'], rtol=1e-5)
  np.testing.assert_allclose(loss.item(), float(jnp.mean(terms['neg_elbo'])),
                             rtol=1e-5)
  # Not a trivial agreement: the KL alone is far from zero.
  assert float(jnp.min(terms['kl'])) > 1.0


def _raw_attention(key, batch):
  """Attention outputs spread over where real glimpses go, and off the image."""
  scale = jnp.array([[0.8, 0.8, 1.0, 0.5, 0.5]])
  return jax.random.normal(key, (batch, layers.NUM_ATTENTION_PARAMS)) * scale


@pytest.mark.parametrize('height, width', SHAPES)
def test_filterbanks_are_draw_jax_s(height, width):
  raw = _raw_attention(jax.random.key(4), 8)
  model = torch_draw.DRAW(A=width, B=height, read_n=3, write_n=4)
  for glimpse, offsets in ((3, model.offs_r), (4, model.offs_w)):
    fx, fy, gamma = model.filterbank(_tensor(raw), glimpse, offsets)
    params = attention.attention_params(raw, height, width, glimpse)
    want_fx, want_fy = jax.vmap(attention.filterbank, in_axes=(0, None, None, None))(
        params, height, width, glimpse)
    np.testing.assert_allclose(fx.numpy(), want_fx, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fy.numpy(), want_fy, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gamma.numpy(), params.gamma, rtol=1e-6)


def test_write_guards_a_vanishing_gamma_as_draw_jax_does():
  """exp(log gamma) underflows to 0: both divide by the floor, not by 0."""
  config = _draw_config(12, 10, True)
  raw = _raw_attention(jax.random.key(5), 3).at[:, 4].set(-200.0)
  patch = jax.random.normal(jax.random.key(6), (3, 4, 4))
  model = torch_draw.DRAW(A=10, B=12, read_n=3, write_n=4)
  head = torch.cat([_tensor(patch.reshape(3, 16)), _tensor(raw)], dim=1)
  canvas = model.write(head).numpy()
  params = attention.attention_params(raw, 12, 10, config.write_n)
  want = jax.vmap(attention.write, in_axes=(0, 0, None, None))(
      patch, params, 12, 10)
  assert np.all(np.isfinite(canvas))
  largest = np.abs(want).max()
  assert largest > 1e5  # the patch was divided by the floor, 1e-6
  # Far from the patch the values are 1e-30 or less, and depend on the
  # order of the products: atol relative to the canvas's scale.
  np.testing.assert_allclose(canvas, want, rtol=1e-5, atol=1e-6 * largest)


def test_kl_constant_is_half_the_latent_size_per_step():
  """At the prior (mu = 0, sigma = 1) the KL is 0: the -1 is per dimension."""
  mean = jnp.zeros((3, 2, 7))
  assert float(jnp.max(objectives.gaussian_kl(mean, mean))) == 0.0
  model = torch_draw.DRAW(A=10, B=12, T=3, enc=16, dec=12, z=7, read_n=3,
                          write_n=4)
  for parameter in model.q.parameters():  # mu = 0, log sigma = 0
    torch.nn.init.zeros_(parameter)
  with torch.no_grad():
    _, _, kl = model(torch.zeros(2, 12, 10), torch.zeros(3, 2, 7))
  assert kl.tolist() == [0.0, 0.0]


# ---- the script -------------------------------------------------------------


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  """A DRAW_DATA_DIR with a small binarized_mnist.npz in its subfolder."""
  folder = tmp_path_factory.mktemp('data')
  (folder / 'binarized_mnist').mkdir()
  rng = np.random.default_rng(0)
  np.savez_compressed(
      folder / 'binarized_mnist' / 'binarized_mnist.npz',
      **{split: rng.integers(0, 2, (count, 28, 28), np.uint8)
         for split, count in (('train', 40), ('valid', 8), ('test', 8))})
  return folder


def _run_script(args, data_folder=None):
  env = {name: value for name, value in os.environ.items()
         if name != 'DRAW_DATA_DIR'}
  if data_folder is not None:
    env['DRAW_DATA_DIR'] = str(data_folder)
  return subprocess.run([sys.executable, 'scripts/torch_draw.py', *args],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300)


SMALL_RUN = ['--batch', '4', '--steps', '2', '--warmup', '1', '--T', '2',
             '--threads', '1', '--eval-test']


@pytest.mark.parametrize('extra', [[], ['--no-attention']])
def test_script_trains_and_evaluates_from_draw_data_dir(data_dir, extra):
  completed = _run_script(SMALL_RUN + extra, data_folder=data_dir)
  assert completed.returncode == 0, completed.stderr[-3000:]
  result = json.loads(completed.stdout.splitlines()[-1])
  assert result['impl'] == 'torch-eager'
  assert result['attention'] == (not extra)
  assert (result['T'], result['batch'], result['timed_steps']) == (2, 4, 2)
  assert result['images_per_sec'] > 0
  assert np.isfinite(result['loss_last'])
  assert result['test_kl_nats'] > 0
  assert result['test_neg_elbo_nats'] == pytest.approx(
      result['test_recon_nats'] + result['test_kl_nats'])


def test_script_takes_data_from_the_flag(data_dir):
  completed = _run_script(
      ['--data', str(data_dir / 'binarized_mnist' / 'binarized_mnist.npz'),
       '--batch', '4', '--steps', '1', '--warmup', '0', '--T', '2'])
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert json.loads(completed.stdout.splitlines()[-1])['timed_steps'] == 1


@pytest.mark.parametrize('make_folder', [False, True])
def test_script_without_data_says_where_to_put_it_in_one_line(tmp_path,
                                                             make_folder):
  completed = _run_script(['--steps', '1'],
                          data_folder=tmp_path if make_folder else None)
  assert completed.returncode == 1
  lines = completed.stderr.splitlines()
  assert len(lines) == 1, completed.stderr
  assert lines[0].startswith('error: no binarized_mnist.npz')
  assert '--data' in lines[0] and 'DRAW_DATA_DIR' in lines[0]
  assert (str(tmp_path) in lines[0]) == make_folder
