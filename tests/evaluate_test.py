"""Split-wide evaluation in process: padding, masking, the IW bound, names."""
import dataclasses

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from configs import smoke
from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import input_pipeline
from draw_jax import settings
from draw_jax import sharding
from draw_jax import train_state


@pytest.fixture(scope='module')
def setup():
  run = settings.parse(smoke.get_config())
  mesh = sharding.make_mesh()
  params = train_state.create(run.model, optax.identity(), jax.random.key(0),
                              mesh)['params']
  rng = np.random.default_rng(0)
  images = (rng.random((37, 28, 28, 1)) < 0.3).astype(np.uint8)
  return run, mesh, params, images


def _evaluator(run, mesh, **eval_fields):
  run = dataclasses.replace(run, eval=dataclasses.replace(run.eval,
                                                          **eval_fields))
  return evaluate.Evaluator(run, train_state.graphdef(run.model), mesh)


def test_split_means_are_the_mean_of_the_examples_whatever_the_batch(setup):
  run, mesh, params, images = setup
  # 37 images in batches of 10: the last batch is padded and masked.
  means = _evaluator(run, mesh, batch_size=10).split_means(params, images)
  assert set(means) == {'neg_elbo', 'reconstruction', 'kl'}
  assert means['neg_elbo'] == pytest.approx(
      means['reconstruction'] + means['kl'], rel=1e-6)
  # Each batch's noise is its own, so whole batches of one size agree with
  # a per-example evaluation of the same batches.
  model = nnx.merge(train_state.graphdef(run.model), params)
  evaluator = _evaluator(run, mesh, batch_size=10)
  per_example = []
  for batch_index in range(4):
    batch = input_pipeline.pad_to_multiple(images, 10)[0][
        batch_index * 10:(batch_index + 1) * 10]
    key = jax.random.fold_in(evaluator._key, batch_index)  # pylint: disable=protected-access
    terms = model.per_example_terms(batch.astype(np.float32), None, key)
    per_example.append(np.asarray(terms['neg_elbo']))
  expected = np.concatenate(per_example)[:37].mean()
  assert means['neg_elbo'] == pytest.approx(expected, rel=1e-5)


def test_evaluation_is_deterministic(setup):
  run, mesh, params, images = setup
  evaluator = _evaluator(run, mesh, batch_size=16)
  assert evaluator.split_means(params, images) == evaluator.split_means(
      params, images)


def test_iw_bound_on_a_strided_subset_is_below_the_elbo(setup):
  run, mesh, params, images = setup
  evaluator = _evaluator(run, mesh, batch_size=40, iw_batch_size=8,
                         iw_examples=20, iw_samples_per_pass=4)
  nll, count = evaluator.importance_weighted_nll(params, images, 8)
  assert count == 20
  elbo = evaluator.split_means(
      params, input_pipeline.strided_subset(images, 20))['neg_elbo']
  assert np.isfinite(nll) and nll <= elbo + 1e-3


def test_evaluate_split_names_its_metrics_by_split(setup):
  run, mesh, params, images = setup
  splits = datasets.Splits(images, images[:20], images[:30])
  evaluator = _evaluator(run, mesh, batch_size=16, iw_batch_size=8,
                         iw_examples=8, iw_samples_per_pass=2)
  results = evaluate.evaluate_split(evaluator, params, splits, 2, 'valid')
  assert {'valid_neg_elbo', 'valid_reconstruction', 'valid_kl',
          'valid_iw2_nll', 'valid_iw_examples',
          'valid_eval_seconds'} <= set(results)
  assert results['valid_iw_examples'] == 8
  assert 'valid_bits_per_dim' not in results  # Bernoulli: no bits/dim


def test_unused_path_never_overwrites(tmp_path):
  first = evaluate.unused_path(str(tmp_path), 'eval_5_test')
  assert first.endswith('eval_5_test.json')
  open(first, 'w').close()
  assert evaluate.unused_path(str(tmp_path), 'eval_5_test').endswith(
      'eval_5_test_2.json')
