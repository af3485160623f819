"""Shipped models: a run's parameters alone, in the workdir layout, plus a JSON.

A pretrained/<name>/ folder is read like a workdir: --mode=sample, --mode=eval
and train.init_from all take it. It holds checkpoints/<step>/ with the step
and parameters only (no optimizer state) and pretrained.json, which records
where they came from and the -ELBO they were measured at.
"""
import dataclasses
import json
import os

import jax
import numpy as np

from draw_jax import checkpoints
from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import input_pipeline
from draw_jax import sharding

METADATA_FILE = 'pretrained.json'
# The fixed, evenly strided test subset whose -ELBO guards against drift.
SUBSET_EXAMPLES = 500


def subset_neg_elbo(evaluator, params, test_images):
  """-ELBO in nats over SUBSET_EXAMPLES strided test images, fixed noise."""
  images = input_pipeline.strided_subset(test_images, SUBSET_EXAMPLES)
  return evaluator.split_means(params, images)['neg_elbo']


def save(directory, step, params, model_config, metadata):
  """Replaces directory's parameters with these; writes pretrained.json."""
  manager = checkpoints.make_manager(directory, keep_latest=1)
  try:
    checkpoints.save(manager, step, dict(step=np.asarray(step, np.int32), params=params),
                     model_config)
    manager.wait_until_finished()
    checkpoints.purge_deleted(manager)
  finally:
    manager.close()
  if jax.process_index() == 0:
    # The folder is committed as it is: no empty retirement folder in it.
    deleted = os.path.join(checkpoints.checkpoint_dir(directory),
                           checkpoints.DELETED_SUBDIR)
    if os.path.isdir(deleted) and not os.listdir(deleted):
      os.rmdir(deleted)
    with open(os.path.join(directory, METADATA_FILE), 'w') as f:
      json.dump(dict(step=int(step), model=dataclasses.asdict(model_config),
                     **metadata), f, indent=2)
      f.write('\n')


def read_metadata(directory):
  with open(os.path.join(directory, METADATA_FILE)) as f:
    return json.load(f)


def export_run(settings, workdir, out, step=None, commit='unknown'):
  """Measures a run's parameters (best by validation if step is None), saves."""
  if step is None:
    manager = checkpoints.make_manager(workdir, read_only=True)
    step = manager.best_step()
    manager.close()
  run = checkpoints.load_trained(settings.model, workdir,
                                 -1 if step is None else step)
  data = settings.data
  splits = datasets.load_splits(data.name, data.dir, data.max_examples)
  evaluator = evaluate.Evaluator(settings, run.graphdef, run.mesh)
  results = {
      **evaluate.evaluate_split(evaluator, run.params, splits, 0, 'valid'),
      **evaluate.evaluate_split(evaluator, run.params, splits, 0, 'test')}
  epoch = run.step / input_pipeline.steps_per_epoch(
      splits.train.shape[0], settings.train.batch_size)
  metadata = dict(
      epoch=round(epoch, 2), images_seen=run.step * settings.train.batch_size,
      recipe=dataclasses.asdict(settings.train), commit=commit,
      data=settings.data.name,
      valid_neg_elbo=results['valid_neg_elbo'],
      test_neg_elbo=results['test_neg_elbo'],
      test_examples=int(splits.test.shape[0]),
      test_subset_neg_elbo=subset_neg_elbo(evaluator, run.params, splits.test),
      test_subset_examples=min(SUBSET_EXAMPLES, int(splits.test.shape[0])))
  save(out, run.step, sharding.to_host(run.params), run.model_config, metadata)
  return read_metadata(out)
