"""Shipped parameters: the export, and every model in pretrained/."""
import dataclasses
import importlib
import json
import os
import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import smoke
from draw_jax import datasets
from draw_jax import checkpoints
from draw_jax import evaluate
from draw_jax import pretrained
from draw_jax import pictures
from draw_jax import settings
from draw_jax import train

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def exported(tmp_path_factory, data_dir):
  """A smoke run and its export."""
  workdir = tmp_path_factory.mktemp('run')
  out = tmp_path_factory.mktemp('pretrained') / 'smoke'
  config = smoke.get_config()
  config.data.dir = data_dir
  run = settings.parse(config)
  state = train.train_and_evaluate(run, str(workdir))
  metadata = pretrained.export_run(run, str(workdir), str(out),
                                   commit='abc123')
  return run, workdir, out, state, metadata


def _size(directory):
  return sum(path.stat().st_size for path in pathlib.Path(directory).rglob('*')
             if path.is_file())


def test_export_keeps_the_best_parameters_and_no_optimizer_state(exported):
  config, workdir, out, _, metadata = exported
  valid = {row['step']: row['valid_neg_elbo'] for row in map(
      json.loads, (workdir / 'metrics.jsonl').read_text().splitlines())
           if 'valid_neg_elbo' in row}
  best = min(valid, key=valid.get)
  assert len(valid) == 2  # steps 10 and 20
  assert metadata['step'] == best
  assert sorted(os.listdir(out / 'checkpoints')) == [str(best)]
  saved = ocp.PyTreeCheckpointer().metadata(out / 'checkpoints' / str(best) /
                                            'state')
  assert set(saved.item_metadata.tree) == {'step', 'params'}
  # Params alone: a third of a checkpoint with Adam's two moments.
  assert _size(out) < 0.5 * _size(workdir / 'checkpoints' / str(best))
  assert metadata['commit'] == 'abc123'
  assert metadata['model'] == dataclasses.asdict(config.model)
  assert metadata['images_seen'] == best * config.train.batch_size
  assert metadata['test_subset_examples'] == pretrained.SUBSET_EXAMPLES
  for name in ('valid_neg_elbo', 'test_neg_elbo', 'test_subset_neg_elbo'):
    assert np.isfinite(metadata[name]) and metadata[name] > 0


def test_export_replaces_the_previous_parameters(exported, tmp_path):
  config, workdir, out, _, _ = exported
  copy = tmp_path / 'copy'
  pretrained.export_run(config, str(workdir), str(copy), step=10)
  pretrained.export_run(config, str(workdir), str(copy), step=20)
  assert os.listdir(copy / 'checkpoints') == ['20']
  assert pretrained.read_metadata(copy)['step'] == 20


def test_an_export_samples_evaluates_and_starts_a_run(exported, tmp_path):
  config, workdir, out, _, metadata = exported
  run = checkpoints.load_trained(config.model, str(out))
  assert run.step == metadata['step']
  paths = pictures.sample(run, config, str(out))
  assert os.path.exists(paths['grid'])
  results = evaluate.evaluate(run, config, str(out))
  assert results['test_neg_elbo'] == pytest.approx(metadata['test_neg_elbo'])
  config = dataclasses.replace(config, train=dataclasses.replace(
      config.train, init_from=str(out)))
  splits = datasets.load_splits(config.data.name, config.data.dir, 0)
  started = train.build_training(config, splits)
  for a, b in zip(jax.tree.leaves(started.state['params']),
                  jax.tree.leaves(run.params)):
    np.testing.assert_array_equal(a, b)


# Every folder in pretrained/, named after the configs/ file that trained it.
SHIPPED_MODELS = sorted(path.name for path in (REPO / 'pretrained').iterdir()
                        if (path / pretrained.METADATA_FILE).is_file())
# How far a recorded figure may move with the code's numerics: nats of the
# -ELBO (one posterior sample per image), or the classification error.
DRIFT = {'neg_elbo': 1.0, 'error': 0.01}


@pytest.mark.parametrize('name', SHIPPED_MODELS)
def test_shipped_model_loads_matches_its_config_and_its_recorded_figure(
    name, data_dir):
  """Fails if the shipped parameters or the model code drift."""
  folder = REPO / 'pretrained' / name
  metadata = pretrained.read_metadata(folder)
  config = importlib.import_module(f'configs.{name}').get_config()
  config.data.dir = data_dir
  shipped = settings.parse(config)
  assert metadata['model'] == dataclasses.asdict(shipped.model)
  assert metadata['data'] == shipped.data.name
  run = checkpoints.load_trained(shipped.model, str(folder))
  assert run.step == metadata['step']
  evaluator = evaluate.Evaluator(shipped, run.graphdef, run.mesh)
  test = datasets.load_splits(shipped.data.name, data_dir, only=('test',))
  measured = pretrained.subset_figure(evaluator, run.params, test.test,
                                      test.test_labels)
  metric = shipped.model.SELECTION_METRIC
  recorded = metadata[f'test_subset_{metric}']
  assert abs(measured - recorded) < DRIFT[metric], (measured, recorded)
