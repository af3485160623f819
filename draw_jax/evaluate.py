"""The negative ELBO and the importance-weighted NLL over a whole split.

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

  def __init__(self, graphdef, mesh, binarization, eval_config, seed):
    self._graphdef = graphdef
    self._mesh = mesh
    self._binarization = binarization
    self._config = eval_config
    # Evaluation noise is fixed, so two evaluations of one model agree.
    self._key = jax.random.fold_in(jax.random.key(seed), 0xE7A1)
    replicated = experiment.replicated(mesh)
    self._elbo_batch = jax.jit(
        self._elbo_sums, static_argnums=3, out_shardings=replicated)
    self._iw_batch = jax.jit(
        self._iw_sum, static_argnums=(3, 4), out_shardings=replicated)

  def _batch(self, images, batch_index, batch_size):
    batch = jax.lax.dynamic_slice_in_dim(images, batch_index * batch_size,
                                         batch_size)
    batch = jax.lax.with_sharding_constraint(
        batch, experiment.batch_sharded(self._mesh))
    key = jax.random.fold_in(self._key, batch_index)
    binary = input_pipeline.binarize(batch, self._binarization,
                                     jax.random.fold_in(key, 1))
    return binary, key

  def _valid_mask(self, batch_index, batch_size, count):
    return (batch_index * batch_size + jnp.arange(batch_size)) < count

  def _elbo_sums(self, params, images, batch_index, batch_size, count):
    binary, key = self._batch(images, batch_index, batch_size)
    output = nnx.merge(self._graphdef, params)(binary, key)
    terms = objectives.negative_elbo(output, binary)
    mask = self._valid_mask(batch_index, batch_size, count)
    return {name: jnp.sum(jnp.where(mask, value, 0.0)) for name, value in
            (('neg_elbo', terms.total), ('reconstruction', terms.reconstruction),
             ('kl', terms.kl))}

  def _iw_sum(self, params, images, batch_index, batch_size, num_samples,
              count):
    binary, key = self._batch(images, batch_index, batch_size)
    model = nnx.merge(self._graphdef, params)
    nll = objectives.importance_weighted_nll(
        model, binary, key, num_samples, self._config.iw_samples_per_pass)
    mask = self._valid_mask(batch_index, batch_size, count)
    return jnp.sum(jnp.where(mask, nll, 0.0))

  def _on_device(self, images, batch_size):
    padded, count = pad_to_multiple(images, batch_size)
    return jax.device_put(padded, experiment.replicated(self._mesh)), count

  def negative_elbo(self, params, images):
    """Mean negative ELBO, reconstruction and KL in nats over images."""
    batch_size = self._config.batch_size
    on_device, count = self._on_device(images, batch_size)
    totals = None
    for batch_index in range(on_device.shape[0] // batch_size):
      sums = self._elbo_batch(params, on_device, batch_index, batch_size, count)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    return {name: float(value) / count
            for name, value in experiment.to_host(totals).items()}

  def importance_weighted_nll(self, params, images, num_samples):
    """Mean -log p(x) estimate with K = num_samples, in nats."""
    batch_size = self._config.iw_batch_size
    images = strided_subset(images, self._config.iw_examples)
    on_device, count = self._on_device(images, batch_size)
    total = 0.0
    for batch_index in range(on_device.shape[0] // batch_size):
      total += float(experiment.to_host(self._iw_batch(
          params, on_device, batch_index, batch_size, num_samples, count)))
    return total / count, count


def evaluate_split(evaluator, params, images, iw_samples, split):
  """Metrics named '<split>_neg_elbo' etc., plus the IW NLL when asked."""
  start = time.time()
  results = {f'{split}_{name}': value for name, value in
             evaluator.negative_elbo(params, images).items()}
  if iw_samples:
    nll, count = evaluator.importance_weighted_nll(params, images, iw_samples)
    results[f'{split}_iw{iw_samples}_nll'] = nll
    results[f'{split}_iw_examples'] = count
  results[f'{split}_eval_seconds'] = time.time() - start
  return results


def evaluate(config, workdir):
  """--mode=eval: test (or valid) ELBO and IW NLL of a checkpoint."""
  run = experiment.load_trained(config, workdir)
  split = config.eval.split
  images = getattr(run.splits, split)
  evaluator = Evaluator(run.graphdef, run.mesh, experiment.binarization(config),
                        config.eval, config.train.seed)
  results = dict(step=run.step, **evaluate_split(
      evaluator, run.params, images, config.eval.iw_samples, split))
  path = os.path.join(workdir, f'eval_{run.step}.json')
  if jax.process_index() == 0:
    with open(path, 'w') as f:
      json.dump(results, f, indent=2)
  logging.info('eval at step %d: %s (written to %s)', run.step, results, path)
  return results
