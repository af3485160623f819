"""The paper's other experiments train end to end at smoke size.

Two-digit MNIST generation, cluttered-MNIST classification and colour
generation (the synthetic coloured MNIST, and SVHN / CIFAR-10 from tiny files
in their real formats) each run the real trainer in a temporary workdir.
"""
import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from configs import cifar10
from configs import cluttered_mnist_cls
from configs import coloured_mnist
from configs import mnist_two_digit
from configs import svhn
from draw_jax import checkpoints
from draw_jax import settings
from draw_jax import sharding
import data_files
import runs
import script_modules

two_digit_attention = script_modules.load('two_digit_attention')
STEPS = 4


def _smoke(config_module, data_dir, arg=None, **model):
  config = config_module.get_config(arg)
  config.data.dir = str(data_dir)
  config.data.max_examples = 64
  config.model.update(T=3, enc_size=32, dec_size=32, z_size=8, **model)
  config.train.update(batch_size=16, num_steps=STEPS, num_epochs=0,
                      warmup_steps=0, checkpoint_every=2, eval_every=STEPS,
                      log_every=2)
  config.eval.update(batch_size=32, iw_samples=2, iw_samples_per_pass=2,
                     iw_batch_size=32, iw_examples=32)
  config.sample.update(num_samples=4, upscale=1, outputs='grid,gif')
  return config


def _training_only(config):
  """No IW bound and no GIF at the run's end: tests that look at neither."""
  config.eval.iw_samples = 0
  config.sample.outputs = 'grid'
  return config


def _eval_results(workdir):
  return json.loads((workdir / f'eval_{STEPS}.json').read_text())


def _samples(workdir):
  return workdir / 'samples' / f'step_{STEPS}'


def test_two_digit_generation_draws_60x60_scenes(tmp_path, data_dir):
  config = _smoke(mnist_two_digit, data_dir, read_n=4, write_n=6)
  runs.train(config, str(tmp_path))
  results = _eval_results(tmp_path)
  assert np.isfinite(results['test_neg_elbo'])
  assert results['test_iw2_nll'] <= results['test_neg_elbo'] + 1.0
  frames = iio.imread(_samples(tmp_path) / 'samples.gif', index=None)
  # A 2x2 grid of 60x60 canvases, with a few pixels of padding.
  assert 120 < frames.shape[1] < 130 and 120 < frames.shape[2] < 130
  # The write-attention analysis runs on the trained run's checkpoint.
  gif = tmp_path / 'reconstructions.gif'
  figures = two_digit_attention.analyse(config, str(tmp_path), examples=20,
                                        gif_path=str(gif))
  assert figures['step'] == STEPS and 0 < figures['scenes'] <= 20
  assert 0.0 <= figures['both_digits_visited'] <= 1.0
  assert sum(figures['step_share'].values()) == pytest.approx(1.0)
  assert sum(figures['canvas_change_share'].values()) == pytest.approx(1.0)
  control = figures['control_other_scenes_digits']
  assert sum(control['step_share'].values()) == pytest.approx(1.0)
  assert iio.imread(gif, index=None).shape[0] == config.model.T


def _classifier_config(data_dir, steps=STEPS):
  config = _smoke(cluttered_mnist_cls, data_dir)
  config.classifier.update(T=3, hidden_size=32, glimpse=8)
  # A constant rate: a cosine over a shorter run would be another schedule.
  config.train.update(num_steps=steps, lr_schedule='constant')
  return config


def test_cluttered_classifier_trains_evaluates_and_draws_glimpses(tmp_path,
                                                                 data_dir):
  runs.train(_classifier_config(data_dir), str(tmp_path))
  results = _eval_results(tmp_path)
  assert 0.0 <= results['test_error'] <= 1.0
  assert np.isfinite(results['test_cross_entropy'])
  assert 'test_neg_elbo' not in results
  glimpses = iio.imread(_samples(tmp_path) / 'glimpses.png')
  # One row per test image, one 100x100 cell per glimpse (T = 3).
  assert glimpses.ndim == 3 and glimpses.shape[1] >= 3 * 100
  lines = [json.loads(line) for line in
           (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert any('train_error' in line for line in lines)
  # --mode=eval and --mode=sample on the classifier's checkpoint.
  config = _classifier_config(data_dir)
  assert runs.evaluate(config, tmp_path)['test_error'] == (
      results['test_error'])
  (_samples(tmp_path) / 'glimpses.png').unlink()
  assert set(runs.sample(config, tmp_path)) == {'glimpses'}
  assert (_samples(tmp_path) / 'glimpses.png').exists()


def test_classifier_resumes_to_the_same_parameters(tmp_path, data_dir):
  straight = runs.train(_classifier_config(data_dir),
                                      str(tmp_path / 'straight'))
  runs.train(_classifier_config(data_dir, steps=2),
                           str(tmp_path / 'resumed'))
  resumed = runs.train(_classifier_config(data_dir),
                                     str(tmp_path / 'resumed'))
  for a, b in zip(jax.tree.leaves(sharding.to_host(straight['params'])),
                  jax.tree.leaves(sharding.to_host(resumed['params']))):
    np.testing.assert_array_equal(a, b)


def test_classifier_refuses_a_generative_workdir(tmp_path, data_dir):
  runs.train(_smoke(mnist_two_digit, data_dir, read_n=4,
                                  write_n=6), str(tmp_path))
  before = sorted(p.name for p in tmp_path.iterdir())
  with pytest.raises(checkpoints.CheckpointMismatchError, match='hidden_size'):
    runs.train(_classifier_config(data_dir), str(tmp_path))
  assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_coloured_mnist_logistic_reports_bits_per_dim(tmp_path, data_dir):
  config = _smoke(coloured_mnist, data_dir, read_n=3, write_n=4)
  runs.train(config, str(tmp_path))
  results = _eval_results(tmp_path)
  dimensions = 28 * 28 * 3
  assert results['test_bits_per_dim'] == pytest.approx(
      results['test_neg_elbo'] / (dimensions * np.log(2.0)))
  assert results['test_iw2_bits_per_dim'] <= results['test_bits_per_dim'] + 0.01
  # 8 bits/dim is a uniform guess over 256 levels; a few steps already beat
  # a model with no idea of the data by much less, so only sanity-check.
  assert 0.0 < results['test_bits_per_dim'] < 12.0
  grid = iio.imread(_samples(tmp_path) / 'samples.png')
  assert grid.shape[-1] == 3


def test_coloured_mnist_paper_bernoulli_on_intensities(tmp_path, data_dir):
  config = _training_only(_smoke(coloured_mnist, data_dir,
                                'likelihood=bernoulli', read_n=3, write_n=4))
  runs.train(config, str(tmp_path))
  results = _eval_results(tmp_path)
  assert np.isfinite(results['test_neg_elbo'])
  assert 'test_bits_per_dim' not in results  # not a likelihood of 8-bit data


# 20 training images remain beside the 5,000 that validate.
@pytest.mark.parametrize('config_module, write_files', [
    (svhn, lambda folder: data_files.write_svhn_mat_files(folder, 5020, 40)),
    (cifar10, lambda folder: data_files.write_cifar10_batches(
        folder, (1004,) * 5, 40)),
])
def test_colour_data_sets_train_from_their_real_file_formats(
    tmp_path, config_module, write_files):
  data_dir = tmp_path / 'data'
  write_files(data_dir)
  config = _training_only(_smoke(config_module, data_dir, read_n=3, write_n=4))
  runs.train(config, str(tmp_path / 'run'))
  results = _eval_results(tmp_path / 'run')
  assert np.isfinite(results['test_bits_per_dim'])


def test_classify_needs_a_labelled_data_set():
  config = cluttered_mnist_cls.get_config('data=binarized_mnist')
  with pytest.raises(settings.ConfigError, match='task=classify needs labels'):
    settings.parse(config)


def test_logistic_likelihood_needs_intensities():
  config = coloured_mnist.get_config()
  config.data.binarization = 'dynamic'
  with pytest.raises(settings.ConfigError,
                     match="needs data.binarization='intensity'"):
    settings.parse(config)
