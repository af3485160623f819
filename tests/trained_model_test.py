"""draw_jax.load: the Python API to a shipped or trained model."""
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import draw_jax
import runs
from configs import cluttered_mnist_cls
from configs import mnist_attn
from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import input_pipeline
from draw_jax import settings

REPO = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = REPO / 'pretrained' / 'mnist_attn'


@pytest.fixture(scope='module')
def shipped():
  return draw_jax.load(str(SHIPPED))


def test_samples_are_canvases_in_the_unit_interval_fixed_by_the_seed(shipped):
  canvases = shipped.sample(3, seed=5)
  assert canvases.shape == (64, 3, 28, 28, 1)
  assert canvases.min() >= 0.0 and canvases.max() <= 1.0
  np.testing.assert_array_equal(canvases, shipped.sample(3, seed=5))
  assert not np.array_equal(canvases, shipped.sample(3, seed=6))
  finals = shipped.final_samples(5, seed=5)
  assert finals.shape == (5, 28, 28, 1)


def test_neg_elbo_is_the_evaluation_s_figure(shipped, data_dir):
  test = datasets.load_splits('binarized_mnist', data_dir, only=('test',)).test
  subset = input_pipeline.strided_subset(test, 200)
  config = mnist_attn.get_config()
  config.data.dir = data_dir
  parsed = settings.parse(config)
  run = runs.loaded(config, SHIPPED)[1]
  expected = evaluate.Evaluator(parsed, run.graphdef, run.mesh).split_means(
      run.params, subset)['neg_elbo']
  # The API takes images in [0, 1]: binarized MNIST's 0/1 as floats too.
  assert shipped.neg_elbo(subset) == pytest.approx(expected, rel=1e-6)
  assert shipped.neg_elbo(subset.astype(np.float32)) == pytest.approx(
      expected, rel=1e-6)
  # A trained model: far better than the 543 nats of a blank canvas.
  assert 60.0 < expected < 100.0
  iw = shipped.importance_weighted_nll(subset[:20], num_samples=10)
  assert iw < shipped.neg_elbo(subset[:20])


def test_reconstructions_draw_the_images(shipped, data_dir):
  test = datasets.load_splits('binarized_mnist', data_dir, only=('test',)).test
  images = input_pipeline.strided_subset(test, 4).astype(np.float32)
  canvases = shipped.reconstruct(images[..., 0])  # [n, H, W] is taken too
  assert canvases.shape == (64, 4, 28, 28, 1)
  # The last canvas is the digit: far closer to it than the first, blank one.
  last_error = np.abs(canvases[-1] - images).mean()
  assert last_error < 0.1 < np.abs(canvases[0] - images).mean()


def test_wrong_images_and_folders_are_named(shipped, tmp_path):
  with pytest.raises(ValueError, match=r'the model takes \[n, 28, 28, 1\]'):
    shipped.neg_elbo(np.zeros((2, 32, 32, 3)))
  with pytest.raises(FileNotFoundError, match='holds no checkpoints'):
    draw_jax.load(str(tmp_path))


def test_a_training_workdir_loads_as_trained(tmp_path, data_dir):
  config = cluttered_mnist_cls.get_config(
      'glimpses=2,steps=4,epochs=0,batch=8,train.warmup_steps=0')
  config.classifier.update(hidden_size=16, glimpse=4)
  config.data.update(dir=data_dir, max_examples=64)
  config.train.update(eval_every=4, checkpoint_every=4, log_every=2)
  config.eval.batch_size = 64
  config.sample.outputs = 'grid'
  runs.train(config, tmp_path)
  model = draw_jax.load(str(tmp_path))
  assert model.step == 4 and model.config.T == 2
  test = datasets.load_splits('cluttered_mnist', data_dir, 64,
                              only=('test',)).test[:5]
  predicted = model.predict(test)
  logits = model.module(test.astype(np.float32) / 255.0).logits
  np.testing.assert_array_equal(predicted, np.argmax(np.asarray(logits), -1))
  assert predicted.shape == (5,) and predicted.dtype.kind == 'i'


def test_the_readme_sample_command_needs_no_data(tmp_path):
  """As on a fresh clone with `pip install -e .`: no data folder, no tfds."""
  blocked = tmp_path / 'site'
  (blocked / 'tensorflow_datasets').mkdir(parents=True)
  (blocked / 'tensorflow_datasets' / '__init__.py').write_text(
      'raise ImportError("not installed")\n')
  shipped = tmp_path / 'mnist_attn'
  shutil.copytree(SHIPPED, shipped)
  env = {name: value for name, value in os.environ.items()
         if name != 'DRAW_DATA_DIR'}
  env.update(PYTHONPATH=str(blocked), JAX_PLATFORMS='cpu')
  done = subprocess.run(
      [sys.executable, '-m', 'draw_jax.main', '--config=configs/mnist_attn.py',
       f'--workdir={shipped}', '--mode=sample'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  written = {path.name for path in (shipped / 'samples').glob('step_*/*')}
  assert {'samples.png', 'samples.gif', 'evolution.png', 'read_filters.png',
          'write_filters.png'} <= written
  assert 'reconstruction.gif' not in written
  assert 'skipped the reconstructions' in done.stderr
