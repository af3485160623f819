"""Split-wide evaluation: the task's loss terms (the negative ELBO and its
parts, or cross-entropy and error), and the importance-weighted NLL.

The split lives on the device as uint8; each jitted call slices its batch out
by index, so evaluation copies nothing from the host per batch.
"""
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from draw_jax import experiment
from draw_jax import input_pipeline
from draw_jax import objectives
from draw_jax import tasks


def pad_to_multiple(images, multiple):
  """Pads with zero images to a whole number of batches; returns (images, n)."""
  count = images.shape[0]
  padding = -count % multiple
  padded = np.concatenate(
      [images, np.zeros((padding,) + images.shape[1:], images.dtype)])
  return padded, count


def strided_subset(images, count):
  """count examples spread evenly over the split (test is sorted by label)."""
  if not count or count >= images.shape[0]:
    return images
  return images[np.linspace(0, images.shape[0] - 1, count).astype(int)]


class Evaluator:
  """Jitted per-batch evaluation of one model shape on one mesh."""

  def __init__(self, graphdef, model_config, mesh, binarization, eval_config,
               seed):
    self._graphdef = graphdef
    self.model_config = model_config
    self._mesh = mesh
    self._binarization = binarization
    self._config = eval_config
    # Evaluation noise is fixed, so two evaluations of one model agree.
    self._key = jax.random.fold_in(jax.random.key(seed), 0xE7A1)
    replicated = experiment.replicated(mesh)
    self._terms_batch = jax.jit(
        self._terms_sums, static_argnums=3, out_shardings=replicated)
    self._iw_batch = jax.jit(
        self._iw_sum, static_argnums=(3, 4), out_shardings=replicated)

  def _batch(self, data, batch_index, batch_size):
    batch = jax.tree.map(
        lambda split: jax.lax.with_sharding_constraint(
            jax.lax.dynamic_slice_in_dim(split, batch_index * batch_size,
                                         batch_size),
            experiment.batch_sharded(self._mesh)), data)
    key = jax.random.fold_in(self._key, batch_index)
    images = input_pipeline.binarize(batch['images'], self._binarization,
                                     jax.random.fold_in(key, 1))
    return images, batch.get('labels'), key

  def _valid_mask(self, batch_index, batch_size, count):
    return (batch_index * batch_size + jnp.arange(batch_size)) < count

  def _terms_sums(self, params, data, batch_index, batch_size, count):
    images, labels, key = self._batch(data, batch_index, batch_size)
    terms = tasks.per_example_terms(nnx.merge(self._graphdef, params),
                                    self.model_config, images, labels, key)
    mask = self._valid_mask(batch_index, batch_size, count)
    return {name: jnp.sum(jnp.where(mask, value, 0.0))
            for name, value in terms.items()}

  def _iw_sum(self, params, images, batch_index, batch_size, num_samples,
              count):
    binary, _, key = self._batch(dict(images=images), batch_index, batch_size)
    model = nnx.merge(self._graphdef, params)
    nll = objectives.importance_weighted_nll(
        model, binary, key, num_samples, self._config.iw_samples_per_pass)
    mask = self._valid_mask(batch_index, batch_size, count)
    return jnp.sum(jnp.where(mask, nll, 0.0))

  def _on_device(self, data, batch_size):
    count = data['images'].shape[0]
    padded = {name: pad_to_multiple(values, batch_size)[0]
              for name, values in data.items()}
    return jax.device_put(padded, experiment.replicated(self._mesh)), count

  def split_means(self, params, images, labels=None):
    """Mean of each loss term over the images, e.g. -ELBO in nats."""
    batch_size = self._config.batch_size
    data = dict(images=images)
    if labels is not None:
      data['labels'] = labels
    on_device, count = self._on_device(data, batch_size)
    totals = {}
    num_batches = on_device['images'].shape[0] // batch_size
    for batch_index in range(num_batches):
      # Summed on the host: an eager op on arrays that span processes is a
      # program of its own that every process must launch in step.
      sums = experiment.to_host(
          self._terms_batch(params, on_device, batch_index, batch_size, count))
      for name, value in sums.items():
        totals[name] = totals.get(name, 0.0) + float(value)
    return {name: value / count for name, value in totals.items()}

  def importance_weighted_nll(self, params, images, num_samples):
    """Mean -log p(x) estimate with K = num_samples, in nats."""
    batch_size = self._config.iw_batch_size
    images = strided_subset(images, self._config.iw_examples)
    on_device, count = self._on_device(dict(images=images), batch_size)
    on_device = on_device['images']
    total = 0.0
    num_batches = on_device.shape[0] // batch_size
    started = time.time()
    for batch_index in range(num_batches):
      total += float(experiment.to_host(self._iw_batch(
          params, on_device, batch_index, batch_size, num_samples, count)))
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
  if tasks.task_of(evaluator.model_config) == tasks.GENERATE:
    labels = None  # the generative model ignores them: leave them on the host
  results = {f'{split}_{name}': value for name, value in
             evaluator.split_means(params, images, labels).items()}
  if iw_samples and tasks.task_of(evaluator.model_config) == tasks.GENERATE:
    nll, count = evaluator.importance_weighted_nll(params, images, iw_samples)
    results[f'{split}_iw{iw_samples}_nll'] = nll
    results[f'{split}_iw_examples'] = count
  results.update(tasks.bits_per_dim_metrics(evaluator.model_config, results,
                                            split))
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


def evaluate(config, workdir):
  """--mode=eval: the test (or valid) loss terms, and the IW NLL if asked."""
  run = experiment.load_trained(config, workdir)
  evaluator = Evaluator(run.graphdef, run.model_config, run.mesh,
                        experiment.binarization(config), config.eval,
                        config.train.seed)
  results = dict(step=run.step, **evaluate_split(
      evaluator, run.params, run.splits, config.eval.iw_samples,
      config.eval.split))
  stem = f'eval_{run.step}_{config.eval.split}'
  if config.eval.iw_samples:
    stem += f'_iw{config.eval.iw_samples}'
  path = unused_path(workdir, stem)
  if jax.process_index() == 0:
    with open(path, 'w') as f:
      json.dump(results, f, indent=2)
  logging.info('eval at step %d: %s (written to %s)', run.step, results, path)
  return results
