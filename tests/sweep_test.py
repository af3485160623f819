"""Sweeps: expansion, naming, tables, and a real two-point run."""
import csv
import io
import os
import pathlib
import subprocess
import sys

import pytest

from draw_jax import sweep

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_product_zip_and_combine():
  assert sweep.product(T=[8, 16], read=[2, 3]) == [
      dict(T=8, read=2), dict(T=8, read=3), dict(T=16, read=2), dict(T=16, read=3)]
  assert sweep.zipped(T=[8, 16], lr=[1e-3, 5e-4]) == [
      dict(T=8, lr=1e-3), dict(T=16, lr=5e-4)]
  combined = sweep.combine(sweep.product(read=[2, 3]), sweep.zipped(T=[8, 16], z=[4, 8]))
  assert len(combined) == 4 and combined[1] == dict(read=2, T=16, z=8)
  with pytest.raises(ValueError, match='differ in length'):
    sweep.zipped(T=[8], read=[2, 3])


def test_point_names_and_arguments():
  point = dict(T=8, read=2, **{'data.name': 'mnist'})
  assert sweep.config_argument(point) == "T=8,read=2,data.name='mnist'"
  assert sweep.point_name(point) == 'T8_read2_data.namemnist'


def test_tables_hold_every_point(tmp_path):
  (tmp_path / 'a').mkdir()
  (tmp_path / 'a' / 'eval_10.json').write_text(
      '{"step": 10, "num_steps": 10, "valid_neg_elbo": 100.5, '
      '"test_neg_elbo": 101.25}')
  # A later --mode=eval result is not the run's own final evaluation.
  (tmp_path / 'a' / 'eval_99_test_iw100.json').write_text(
      '{"step": 99, "test_neg_elbo": 1.0}')
  rows = sweep.table_rows([dict(T=8), dict(T=16)],
                          [str(tmp_path / 'a'), str(tmp_path / 'missing')])
  markdown = sweep.markdown_table(rows).splitlines()
  assert markdown[0].startswith('| T | step | valid_neg_elbo | test_neg_elbo')
  assert markdown[2].startswith('| 8 | 10 | 100.50 | 101.25')
  assert markdown[3].startswith('| 16 |  |')
  parsed = list(csv.DictReader(io.StringIO(sweep.csv_table(rows))))
  assert parsed[0]['test_neg_elbo'] == '101.25' and parsed[1]['step'] == ''
  assert sweep.is_finished(str(tmp_path / 'a'))
  (tmp_path / 'b').mkdir()  # stopped by its time budget, before its end
  (tmp_path / 'b' / 'eval_10.json').write_text('{"step": 10, "num_steps": 11}')
  assert not sweep.is_finished(str(tmp_path / 'b'))


def test_real_sweep_runs_each_point_once(tmp_path, data_dir):
  (tmp_path / 'two_points.py').write_text(
      'from draw_jax import sweep\n'
      'def get_sweep():\n  return sweep.product(seed=[0, 1])\n')
  command = [sys.executable, 'scripts/sweep.py', '--config=configs/smoke.py',
             f'--sweep={tmp_path / "two_points.py"}', f'--root={tmp_path / "runs"}',
             '--parallel=2', '--extra=--config.train.num_steps=2',
             '--extra=--config.sample.outputs=grid',
             '--extra=--config.data.max_examples=1000']
  env = dict(os.environ, DRAW_DATA_DIR=data_dir, JAX_PLATFORMS='cpu')
  first = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  table = (tmp_path / 'runs' / 'results.md').read_text().splitlines()
  assert [line.split('|')[1].strip() for line in table[2:]] == ['0', '1']
  assert all(line.split('|')[2].strip() == '2' for line in table[2:])  # step
  assert (tmp_path / 'runs' / 'results.csv').exists()
  second = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
  assert second.returncode == 0
  assert '0 of 2 points to run' in second.stderr
