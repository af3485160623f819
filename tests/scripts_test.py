"""The campaign's scripts: the learning curve, checkpoint averaging."""
import json

import jax
import numpy as np
import pytest

import runs
import script_modules
from configs import smoke
from draw_jax import checkpoints
from draw_jax import settings
from draw_jax import sharding

learning_curve = script_modules.load('learning_curve')
average_checkpoints = script_modules.load('average_checkpoints')


def _write_run(workdir, rows):
  workdir.mkdir()
  (workdir / 'config.json').write_text(json.dumps(dict(train=dict(batch_size=128))))
  (workdir / 'metrics.jsonl').write_text(
      ''.join(json.dumps(row) + '\n' for row in rows) + '{"step": 9, "cut sh')


def test_learning_curve_sums_wall_time_over_processes_and_merges_splits(
    tmp_path):
  _write_run(tmp_path / 'run', [
      dict(step=100, train_loss=150.0, process_seconds=1800.0),
      dict(step=390, valid_neg_elbo=120.0, epoch=1.0, process_seconds=3600.0),
      dict(step=390, test_neg_elbo=119.0, epoch=1.0, process_seconds=3610.0),
      # A new process, resumed from step 300: its clock starts again.
      dict(step=390, valid_neg_elbo=118.0, epoch=1.0, process_seconds=900.0),
      # A moving average's figure, and the training parameters' beside it.
      dict(step=780, valid_neg_elbo=110.0, live_valid_neg_elbo=110.5,
           epoch=2.0, process_seconds=1800.0),
  ])
  records = learning_curve.evaluations(
      learning_curve.read_rows(tmp_path / 'run'), 128)
  assert [r['step'] for r in records] == [390, 780]
  # The later evaluation of a step wins; the test figure of that step stays.
  assert records[0]['valid_neg_elbo'] == 118.0
  assert records[0]['test_neg_elbo'] == 119.0
  assert records[1]['wall_hours'] == pytest.approx((3610 + 1800) / 3600)
  assert records[1]['images'] == 780 * 128
  table = learning_curve.markdown_table(records).splitlines()
  assert table[2] == '| 1 | 390 | 1.0 | 49,920 | 1.25 | 118.00 | 119.00 |  |'
  assert table[3].endswith('| 110.00 |  | 110.50 |')


def test_learning_curve_replaces_only_its_section(tmp_path):
  _write_run(tmp_path / 'run', [
      dict(step=390, valid_neg_elbo=120.0, epoch=1.0, process_seconds=60.0)])
  page = tmp_path / 'results.md'
  start, end = learning_curve.CURVE_MARKERS
  page.write_text(f'before\n{start}\nold table\n{end}\nafter\n')
  learning_curve.main([f'--workdir={tmp_path / "run"}', f'--markdown={page}',
                       f'--png={tmp_path / "curve.png"}'])
  text = page.read_text()
  assert text.startswith('before\n') and text.endswith('after\n')
  assert 'old table' not in text and '| 1 | 390 | 1.0 |' in text
  assert (tmp_path / 'curve.png').stat().st_size > 1000
  (tmp_path / 'plain.md').write_text('no markers here')
  with pytest.raises(SystemExit, match='no <!-- learning-curve:start'):
    learning_curve.main([f'--workdir={tmp_path / "run"}',
                         f'--markdown={tmp_path / "plain.md"}'])


def test_learning_curve_goes_on_from_a_lost_attempt_at_its_start_step(
    tmp_path):
  """Attempt 2 starts from attempt 1's shipped step-390 parameters."""
  history = tmp_path / 'curve.jsonl'
  _write_run(tmp_path / 'first', [
      dict(step=390, valid_neg_elbo=120.0, epoch=1.0, process_seconds=3600.0),
      dict(step=780, valid_neg_elbo=110.0, epoch=2.0, process_seconds=7200.0)])
  learning_curve.main([f'--workdir={tmp_path / "first"}',
                       f'--history={history}'])
  shipped = tmp_path / 'pretrained'
  shipped.mkdir()
  (shipped / 'pretrained.json').write_text(json.dumps(dict(step=390)))
  _write_run(tmp_path / 'second', [
      dict(step=400, train_loss=119.0, process_seconds=60.0),
      dict(step=780, valid_neg_elbo=108.0, epoch=2.0, process_seconds=1800.0)])
  (tmp_path / 'second' / 'config.json').write_text(json.dumps(dict(train=dict(
      batch_size=128, init_from=str(shipped), init_continue=True))))
  page = tmp_path / 'results.md'
  start, end = learning_curve.CURVE_MARKERS
  page.write_text(f'{start}\n{end}\n')
  learning_curve.main([f'--workdir={tmp_path / "second"}', f'--history={history}',
                       '--attempt=2', f'--markdown={page}',
                       f'--png={tmp_path / "curve.png"}'])
  rows = page.read_text().splitlines()[3:-1]
  # Attempt 1 up to the start step, then attempt 2, its hours counted on.
  assert rows == ['| 1 | 390 | 1.0 | 49,920 | 1.00 | 120.00 |  |  |',
                  '| 2 | 780 | 2.0 | 99,840 | 1.50 | 108.00 |  |  |']
  kept = learning_curve.read_history(history)
  assert [(r['attempt'], r['step']) for r in kept] == [
      (1, 390), (1, 780), (2, 780)]
  # Rerunning replaces attempt 2's records rather than adding to them, and
  # its start is kept in the history once a resume's config.json lost it.
  (tmp_path / 'second' / 'config.json').write_text(json.dumps(dict(train=dict(
      batch_size=128, init_from='', init_continue=False))))
  learning_curve.main([f'--workdir={tmp_path / "second"}', f'--history={history}',
                       '--attempt=2'])
  assert learning_curve.read_history(history) == kept
  # An attempt with nothing before its start in the history is an error.
  with pytest.raises(SystemExit, match='no earlier record'):
    learning_curve.main([f'--workdir={tmp_path / "second"}',
                         f'--history={tmp_path / "empty.jsonl"}', '--attempt=2',
                         '--from_step=390'])


def test_average_checkpoints_measures_the_mean_of_the_newest_k(tmp_path,
                                                              data_dir):
  config = smoke.get_config('steps=6')
  config.data.update(dir=data_dir, max_examples=500)
  config.train.update(checkpoint_every=2, eval_every=100)
  config.eval.iw_samples = 0
  config.sample.outputs = 'grid'
  runs.train(config, tmp_path)
  parsed = settings.parse(config)
  figures = average_checkpoints.averaged_neg_elbos(parsed, str(tmp_path),
                                                   [2, 4, 6], 'valid')
  final = json.loads((tmp_path / 'eval_6.json').read_text())
  assert figures[1] == pytest.approx(final['valid_neg_elbo'])
  assert len({round(v, 6) for v in figures.values()}) == 3
  # --split=train reads the training images, not the validation ones.
  train = average_checkpoints.averaged_neg_elbos(parsed, str(tmp_path), [6],
                                                 'train')[1]
  assert np.isfinite(train) and train != pytest.approx(figures[1], abs=1e-4)
  mesh = sharding.make_mesh()
  params = [checkpoints.load_params(parsed.model, str(tmp_path), mesh, step)[0]
            for step in (4, 6)]
  mean = average_checkpoints.mean_params(params)
  for got, a, b in zip(*(jax.tree.leaves(p) for p in [mean] + params)):
    np.testing.assert_allclose(np.asarray(got), (np.asarray(a) + np.asarray(b)) / 2,
                               rtol=1e-6)
