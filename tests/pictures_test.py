"""Generation and the pictures, in process, for DRAW and the classifier."""
import dataclasses

import imageio.v3 as iio
import jax
import numpy as np
import optax
import pytest

from configs import cluttered_mnist_cls
from configs import smoke
from draw_jax import pictures
from draw_jax import settings
from draw_jax import sharding
from draw_jax import train_state


def _params(model_config, mesh):
  return train_state.create(model_config, optax.identity(), jax.random.key(0),
                            mesh)['params']


@pytest.fixture(scope='module')
def draw():
  run = settings.parse(smoke.get_config())
  mesh = sharding.make_mesh()
  sampler = pictures.Sampler(train_state.graphdef(run.model), run.model, mesh,
                             'none')
  return run, sampler, _params(run.model, mesh)


def test_generated_canvases_are_images_with_their_write_windows(draw):
  run, sampler, params = draw
  drawing = sampler.generate(params, jax.random.key(1), 5)
  T = run.model.T
  assert drawing.canvases.shape == (T, 5, 28, 28, 1)
  assert np.all((drawing.canvases >= 0) & (drawing.canvases <= 1))
  assert drawing.write_params.center_x.shape == (T, 5)
  # Where each step's read would look, from the decoder's previous state.
  assert drawing.read_params.center_x.shape == (T, 5)
  # The chunked path draws chunk i with the key folded with i.
  finals = sampler.final_samples(params, jax.random.key(4), 5)
  first_chunk = sampler.generate(params, jax.random.fold_in(jax.random.key(4), 0),
                                 5)
  np.testing.assert_allclose(finals, first_chunk.canvases[-1], atol=1e-6)


def test_final_samples_come_in_chunks_of_any_size(draw, monkeypatch):
  _, sampler, params = draw
  monkeypatch.setattr(pictures, '_GENERATION_CHUNK', 4)
  samples = sampler.final_samples(params, jax.random.key(2), 10)
  assert samples.shape == (10, 28, 28, 1)
  # Each chunk has its own noise: no two samples are the same.
  assert len({sample.tobytes() for sample in samples}) == 10


def test_reconstruction_reads_and_writes(draw):
  _, sampler, params = draw
  images = np.zeros((3, 28, 28, 1), np.uint8)
  drawing = sampler.reconstruct(params, images, jax.random.key(3))
  assert drawing.canvases.shape[1:] == (3, 28, 28, 1)
  assert drawing.read_params.center_x.shape == drawing.write_params.center_x.shape


def _draw_pictures(run, mesh, **sample_fields):
  return run.model.make_pictures(
      train_state.graphdef(run.model), mesh, 'none',
      dataclasses.replace(run.sample, **sample_fields))


def test_draw_pictures_writes_only_the_outputs_asked_for(draw, tmp_path):
  run, _, params = draw
  test_images = np.zeros((20, 28, 28, 1), np.uint8)
  write = _draw_pictures(run, sharding.make_mesh(), outputs=('grid', 'gif'),
                         num_samples=4)
  paths = write(params, str(tmp_path), test_images)
  assert set(paths) == {'grid', 'gif'}
  assert sorted(p.name for p in tmp_path.iterdir()) == ['samples.gif',
                                                        'samples.png']
  assert iio.imread(paths['gif'], index=None).shape[0] > 1


def test_without_test_images_all_but_the_reconstructions_are_drawn(
    draw, tmp_path, caplog):
  run, _, params = draw
  write = _draw_pictures(run, sharding.make_mesh(), num_samples=4)
  with caplog.at_level('INFO'):
    paths = write(params, str(tmp_path), None)
  assert set(paths) == {'grid', 'evolution', 'gif', 'read_filters',
                        'write_filters'}
  assert 'skipped the reconstructions' in caplog.text
  with_images = write(params, str(tmp_path / 'with'),
                      np.zeros((20, 28, 28, 1), np.uint8))
  assert set(with_images) == set(paths) | {'reconstruction'}


@pytest.mark.parametrize('data,size', [('cluttered_mnist', 100),
                                       ('mnist', 28)])  # binarized by sampling
def test_the_classifier_draws_its_glimpses(data, size, tmp_path):
  config = cluttered_mnist_cls.get_config(f'data={data}')
  config.classifier.update(T=2, hidden_size=16, glimpse=4)
  run = settings.parse(config)
  mesh = sharding.make_mesh()
  write = run.model.make_pictures(train_state.graphdef(run.model), mesh,
                                  run.data.binarization, run.sample)
  assert write(_params(run.model, mesh), str(tmp_path), None) == {}
  paths = write(_params(run.model, mesh), str(tmp_path),
                np.full((10, size, size, 1), 200, np.uint8))
  assert set(paths) == {'glimpses'}
  picture = iio.imread(paths['glimpses'])
  assert picture.ndim == 3 and picture.shape[1] >= 2 * size
