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
from draw_jax import settings as settings_lib
from draw_jax import sharding

METADATA_FILE = 'pretrained.json'
# The fixed, evenly strided test subset whose figure guards against drift.
SUBSET_EXAMPLES = 500


def subset_figure(evaluator, params, test_images, test_labels=None):
  """The model's SELECTION_METRIC (DRAW's -ELBO in nats, the classifier's
  error) over SUBSET_EXAMPLES strided test images, with fixed noise."""
  images = input_pipeline.strided_subset(test_images, SUBSET_EXAMPLES)
  labels = (None if test_labels is None else
            input_pipeline.strided_subset(test_labels, SUBSET_EXAMPLES))
  figures = evaluator.split_means(params, images, labels)
  return figures[evaluator.model_config.SELECTION_METRIC]


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
  splits = datasets.load_splits(data.name, data.dir, data.max_examples,
                                only=('valid', 'test'))
  evaluator = evaluate.Evaluator(settings, run.graphdef, run.mesh)
  results = {
      **evaluate.evaluate_split(evaluator, run.params, splits, 0, 'valid'),
      **evaluate.evaluate_split(evaluator, run.params, splits, 0, 'test')}
  train_examples = settings_lib.train_examples(data, datasets.spec(data.name))
  epoch = run.step / input_pipeline.steps_per_epoch(train_examples,
                                                    settings.train.batch_size)
  metric = settings.model.SELECTION_METRIC
  metadata = {
      'epoch': round(epoch, 2),
      'images_seen': run.step * settings.train.batch_size,
      'recipe': dataclasses.asdict(settings.train), 'commit': commit,
      'task': settings.task, 'data': data.name,
      f'valid_{metric}': results[f'valid_{metric}'],
      f'test_{metric}': results[f'test_{metric}'],
      'test_examples': int(splits.test.shape[0]),
      f'test_subset_{metric}': subset_figure(evaluator, run.params,
                                             splits.test, splits.test_labels),
      'test_subset_examples': min(SUBSET_EXAMPLES, int(splits.test.shape[0]))}
  save(out, run.step, sharding.to_host(run.params), run.model_config, metadata)
  return read_metadata(out)
