"""The scripts: the learning curve, checkpoint averaging, latent activity."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import runs
import script_modules
from configs import mnist_noattn
from configs import smoke
from draw_jax import checkpoints
from draw_jax import settings
from draw_jax import sharding

learning_curve = script_modules.load('learning_curve')
average_checkpoints = script_modules.load('average_checkpoints')
REPO = pathlib.Path(__file__).resolve().parents[1]


def _write_run(workdir, rows, **train):
  workdir.mkdir()
  (workdir / 'config.json').write_text(
      json.dumps(dict(train=dict(batch_size=128, **train))))
  (workdir / 'metrics.jsonl').write_text(
      ''.join(json.dumps(row) + '\n' for row in rows) + '{"step": 9, "cut sh')


def _table_rows(page):
  """The table's data rows between the curve markers."""
  return page.read_text().splitlines()[3:-1]


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
      learning_curve.read_rows(tmp_path / 'run'))
  assert [r['step'] for r in records] == [390, 780]
  # The later evaluation of a step wins; the test figure of that step stays.
  assert records[0]['valid_neg_elbo'] == 118.0
  assert records[0]['test_neg_elbo'] == 119.0
  assert records[1]['wall_hours'] == pytest.approx((3610 + 1800) / 3600)
  table = learning_curve.markdown_table(records).splitlines()
  assert table[0].startswith('| step | epoch | wall hours |')
  assert table[2] == '| 390 | 1.0 | 1.25 | 118.00 | 119.00 |  |'
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
  assert 'old table' not in text and '| 390 | 1.0 | 0.02 | 120.00 |' in text
  assert (tmp_path / 'curve.png').stat().st_size > 1000
  (tmp_path / 'plain.md').write_text('no markers here')
  with pytest.raises(SystemExit, match='no <!-- learning-curve:start'):
    learning_curve.main([f'--workdir={tmp_path / "run"}',
                         f'--markdown={tmp_path / "plain.md"}'])


def test_learning_curve_continues_a_history_from_the_run_s_start_step(
    tmp_path):
  """A run from shipped step-390 parameters goes on from the history there."""
  history = tmp_path / 'curve.jsonl'
  # An earlier run's curve; its step-780 evaluation is superseded.
  _write_run(tmp_path / 'first', [
      dict(step=390, valid_neg_elbo=120.0, epoch=1.0, process_seconds=3600.0),
      dict(step=780, valid_neg_elbo=110.0, epoch=2.0, process_seconds=7200.0)])
  learning_curve.main([f'--workdir={tmp_path / "first"}',
                       f'--history={history}'])
  assert [(r['step'], r['wall_hours']) for r in
          learning_curve.read_history(history)] == [(390, 1.0), (780, 2.0)]
  shipped = tmp_path / 'pretrained'
  shipped.mkdir()
  (shipped / 'pretrained.json').write_text(json.dumps(dict(step=390)))
  _write_run(tmp_path / 'second', [
      dict(step=400, train_loss=119.0, process_seconds=60.0),
      dict(step=780, valid_neg_elbo=108.0, epoch=2.0, process_seconds=1800.0)],
             init_from=str(shipped), init_continue=True)
  page = tmp_path / 'results.md'
  start, end = learning_curve.CURVE_MARKERS
  page.write_text(f'{start}\n{end}\n')
  learning_curve.main([f'--workdir={tmp_path / "second"}', f'--history={history}',
                       f'--markdown={page}', f'--png={tmp_path / "curve.png"}'])
  # The history up to step 390, then the run, its hours counted on from 1.00.
  expected = ['| 390 | 1.0 | 1.00 | 120.00 |  |  |',
              '| 780 | 2.0 | 1.50 | 108.00 |  |  |']
  assert _table_rows(page) == expected
  kept = learning_curve.read_history(history)
  assert [(r['step'], r['valid_neg_elbo']) for r in kept] == [
      (390, 120.0), (780, 108.0)]
  assert all(set(r) <= set(learning_curve.FIELDS) for r in kept)
  # Rerunning gives the same history; --from_step stands in for a config.json
  # that no longer names init_from.
  (tmp_path / 'second' / 'config.json').write_text(
      json.dumps(dict(train=dict(batch_size=128))))
  learning_curve.main([f'--workdir={tmp_path / "second"}', f'--history={history}',
                       '--from_step=390'])
  assert learning_curve.read_history(history) == kept
  # The history alone draws the same table and leaves its file as it is.
  page.write_text(f'{start}\n{end}\n')
  learning_curve.main([f'--history={history}', f'--markdown={page}'])
  assert _table_rows(page) == expected
  assert learning_curve.read_history(history) == kept
  # A run that starts where the history has nothing before it is an error.
  with pytest.raises(SystemExit, match='no evaluation at or before it'):
    learning_curve.main([f'--workdir={tmp_path / "second"}',
                         f'--history={tmp_path / "empty.jsonl"}',
                         '--from_step=390'])
  with pytest.raises(SystemExit, match='--workdir, --history or both'):
    learning_curve.main([f'--markdown={page}'])


def test_learning_curve_every_keeps_the_first_every_nth_and_the_last(
    tmp_path):
  _write_run(tmp_path / 'run', [
      dict(step=100 * n, valid_neg_elbo=200.0 - n, epoch=float(n),
           process_seconds=36.0 * n) for n in range(1, 8)])
  page = tmp_path / 'results.md'
  start, end = learning_curve.CURVE_MARKERS
  page.write_text(f'{start}\n{end}\n')
  learning_curve.main([f'--workdir={tmp_path / "run"}', f'--markdown={page}',
                       '--every=3'])
  assert [row.split(' | ')[0] for row in _table_rows(page)] == [
      '| 100', '| 300', '| 600', '| 700']
  with pytest.raises(SystemExit, match='--every must be 1 or more'):
    learning_curve.main([f'--workdir={tmp_path / "run"}', '--every=0'])


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


def test_latent_activity_counts_units_whose_posterior_mean_moves(
    tmp_path, data_dir):
  # mnist_noattn imports mnist_attn: the script finds configs/ as a package.
  arg = ('T=3,enc=16,dec=16,z=4,batch=16,epochs=0,steps=6,'
         'train.warmup_steps=0,train.eval_every=6,train.checkpoint_every=6,'
         'data.max_examples=500')
  config = mnist_noattn.get_config(arg)
  config.data.dir = data_dir
  config.eval.iw_samples = 0
  config.sample.outputs = 'grid'
  runs.train(config, tmp_path)
  done = subprocess.run(
      [sys.executable, str(REPO / 'scripts' / 'latent_activity.py'),
       f'--config={REPO}/configs/mnist_noattn.py:{arg}',
       f'--config.data.dir={data_dir}', f'--workdir={tmp_path}',
       '--split=valid', '--batch_size=100'],
      cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert (result['step'], result['images'], result['latent_units']) == (
      6, 500, 12)
  assert len(result['kl_per_step']) == len(result['active_per_step']) == 3
  assert sum(result['kl_per_step']) == pytest.approx(result['kl'])
  assert sum(result['active_per_step']) == result['active_units']
  assert 0 <= result['units_active_at_some_step'] <= 4
  # Its -ELBO is the evaluation's, up to the posterior noise of one sample.
  evaluated = json.loads((tmp_path / 'eval_6.json').read_text())
  assert result['kl'] + result['reconstruction'] == pytest.approx(
      evaluated['valid_neg_elbo'], rel=0.02)
  # With every unit's mean held still, no unit is active.
  quiet = subprocess.run(
      [sys.executable, str(REPO / 'scripts' / 'latent_activity.py'),
       f'--config={REPO}/configs/mnist_noattn.py:{arg}',
       f'--config.data.dir={data_dir}', f'--workdir={tmp_path}',
       '--split=valid', '--batch_size=100', '--threshold=1e9'],
      cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert json.loads(quiet.stdout.strip().splitlines()[-1])['active_units'] == 0
