"""Split-wide evaluation: the model's per-example terms (the -ELBO and its
parts, or cross-entropy and error), and the importance-weighted NLL.

The split lives on the devices as uint8; each jitted call slices its batch
out by index, so evaluation copies nothing from the host per batch.
"""
import json
import os
import time

import jax
import jax.numpy as jnp
from absl import logging
from flax import nnx

from draw_jax import datasets
from draw_jax import input_pipeline
from draw_jax import interface
from draw_jax import sharding
from draw_jax import train_state


class Evaluator:
  """Jitted per-batch evaluation of settings.model on one mesh."""

  def __init__(self, settings, graphdef, mesh):
    self._graphdef = graphdef
    self.model_config = settings.model
    self._mesh = mesh
    self._binarization = settings.data.binarization
    self._settings = settings.eval
    # Evaluation noise is fixed, so two evaluations of one model agree; an
    # argument of the programs, not a constant, so seeds share one compile.
    self._key = jax.random.fold_in(jax.random.key(settings.train.seed), 0xE7A1)
    replicated = sharding.replicated(mesh)
    self._terms_batch = jax.jit(
        self._terms_sums, static_argnums=4, out_shardings=replicated)
    self._iw_batch = jax.jit(
        self._iw_sum, static_argnums=(4, 5), out_shardings=replicated)
    # Whether the model estimates -log p(x): interface.LikelihoodModel.
    self.has_iw_bound = isinstance(train_state.abstract_model(settings.model),
                                   interface.LikelihoodModel)

  def _batch(self, data, eval_key, batch_index, batch_size):
    batch = jax.tree.map(
        lambda split: jax.lax.with_sharding_constraint(
            jax.lax.dynamic_slice_in_dim(split, batch_index * batch_size,
                                         batch_size),
            sharding.batch_sharded(self._mesh)), data)
    key = jax.random.fold_in(eval_key, batch_index)
    images = input_pipeline.binarize(batch['images'], self._binarization, key)
    return images, batch.get('labels'), key

  def _valid_mask(self, batch_index, batch_size, count):
    return (batch_index * batch_size + jnp.arange(batch_size)) < count

  def _terms_sums(self, params, data, eval_key, batch_index, batch_size,
                  count):
    images, labels, key = self._batch(data, eval_key, batch_index, batch_size)
    model = nnx.merge(self._graphdef, params)
    terms = model.per_example_terms(images, labels, key)
    mask = self._valid_mask(batch_index, batch_size, count)
    return {name: jnp.sum(jnp.where(mask, value, 0.0))
            for name, value in terms.items()}

  def _iw_sum(self, params, images, eval_key, batch_index, batch_size,
              num_samples, count):
    binary, _, key = self._batch(dict(images=images), eval_key, batch_index,
                                 batch_size)
    model = nnx.merge(self._graphdef, params)
    nll = model.importance_weighted_nll(binary, key, num_samples,
                                        self._settings.iw_samples_per_pass)
    mask = self._valid_mask(batch_index, batch_size, count)
    return jnp.sum(jnp.where(mask, nll, 0.0))

  def split_means(self, params, images, labels=None):
    """Mean of each per-example term over the images, e.g. -ELBO in nats."""
    batch_size = self._settings.batch_size
    on_devices = input_pipeline.on_devices(images, labels, self._mesh,
                                           batch_size)
    count = images.shape[0]
    totals = {}
    for batch_index in range(on_devices['images'].shape[0] // batch_size):
      # Summed on the host: an eager op on arrays that span processes is a
      # program of its own that every process must launch in step.
      sums = sharding.to_host(
          self._terms_batch(params, on_devices, self._key, batch_index,
                            batch_size, count))
      for name, value in sums.items():
        totals[name] = totals.get(name, 0.0) + float(value)
    return {name: value / count for name, value in totals.items()}

  def importance_weighted_nll(self, params, images, num_samples):
    """Mean -log p(x) estimate with K = num_samples, in nats; and the count."""
    batch_size = self._settings.iw_batch_size
    images = input_pipeline.strided_subset(images, self._settings.iw_examples)
    on_devices = input_pipeline.on_devices(images, None, self._mesh,
                                           batch_size)['images']
    count = images.shape[0]
    total = 0.0
    num_batches = on_devices.shape[0] // batch_size
    started = time.time()
    for batch_index in range(num_batches):
      total += float(sharding.to_host(self._iw_batch(
          params, on_devices, self._key, batch_index, batch_size, num_samples,
          count)))
      _log_progress(f'IW bound, K = {num_samples}', batch_index + 1,
                    num_batches, time.time() - started)
    return total / count, count


def _log_progress(what, done, total, seconds):
  """One line per batch, for evaluations long enough to wonder about."""
  if total > 1:
    logging.info('%s: batch %d of %d, %.0f s elapsed, ~%.0f s left', what,
                 done, total, seconds, seconds / done * (total - done))


def evaluate_split(evaluator, params, splits, iw_samples, split):
  """Metrics named '<split>_neg_elbo' etc., plus the IW NLL when asked."""
  start = time.time()
  images = getattr(splits, split)
  labels = getattr(splits, f'{split}_labels')
  results = {f'{split}_{name}': value for name, value in
             evaluator.split_means(params, images, labels).items()}
  if iw_samples and evaluator.has_iw_bound:
    nll, count = evaluator.importance_weighted_nll(params, images, iw_samples)
    results[f'{split}_iw{iw_samples}_nll'] = nll
    results[f'{split}_iw_examples'] = count
  results.update(evaluator.model_config.derived_metrics(results, split))
  results[f'{split}_eval_seconds'] = time.time() - start
  return results


def unused_path(workdir, stem):
  """workdir/<stem>.json, else <stem>_2.json, _3, ...: never a file that exists.

  The trainer's own eval_<step>.json, and every earlier --mode=eval result,
  stay as they were.
  """
  path = os.path.join(workdir, f'{stem}.json')
  copy = 2
  while os.path.exists(path):
    path = os.path.join(workdir, f'{stem}_{copy}.json')
    copy += 1
  return path


def evaluate(run, settings, workdir):
  """--mode=eval on a loaded run: the split's terms, and the IW NLL if asked."""
  data = settings.data
  split = settings.eval.split
  splits = datasets.load_splits(data.name, data.dir, data.max_examples,
                                only=(split,))
  evaluator = Evaluator(settings, run.graphdef, run.mesh)
  results = dict(step=run.step, **evaluate_split(
      evaluator, run.params, splits, settings.eval.iw_samples, split))
  stem = f'eval_{run.step}_{split}'
  if settings.eval.iw_samples and evaluator.has_iw_bound:
    stem += f'_iw{settings.eval.iw_samples}'
  path = unused_path(workdir, stem)
  if jax.process_index() == 0:
    with open(path, 'w') as f:
      json.dump(results, f, indent=2)
  logging.info('eval at step %d: %s (written to %s)', run.step, results, path)
  return results
