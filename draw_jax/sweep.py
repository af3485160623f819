"""Sweeps: points of config overrides, one workdir each, and their results.

A sweep file (e.g. configs/sweep_t_read.py) defines get_sweep() returning a
list of points, each a dict {field: value}, built with product() and zipped().
Fields use the config argument's names: short ones (T, read) or dotted paths.
"""
import csv
import glob
import io
import itertools
import json
import os
import re

RESULT_COLUMNS = ('valid_neg_elbo', 'test_neg_elbo', 'test_reconstruction',
                  'test_kl')


def product(**axes):
  """Every combination of the axes' values: product(T=[8, 16], read=[2, 3])."""
  names = list(axes)
  return [dict(zip(names, values))
          for values in itertools.product(*(axes[name] for name in names))]


def zipped(**axes):
  """The axes' values taken in lockstep: zipped(T=[8, 16], lr=[1e-3, 5e-4])."""
  lengths = {len(values) for values in axes.values()}
  if len(lengths) != 1:
    raise ValueError(f'zipped() axes differ in length: {axes}')
  return [dict(zip(axes, values)) for values in zip(*axes.values())]


def combine(*sweeps):
  """The product of several sweeps: combine(product(...), zipped(...))."""
  return [dict(itertools.chain.from_iterable(p.items() for p in points))
          for points in itertools.product(*sweeps)]


def config_argument(point):
  """'T=8,read=2': the config file argument that selects the point."""
  return ','.join(f'{name}={value!r}' if isinstance(value, str) else
                  f'{name}={value}' for name, value in point.items())


def point_name(point):
  """A workdir name: T8_read2."""
  text = '_'.join(f'{name}{value}' for name, value in point.items())
  return re.sub(r'[^A-Za-z0-9_.-]', '-', text)


def final_results(workdir):
  """The trainer's newest eval_<step>.json in workdir as a dict, or None.

  --mode=eval results (eval_<step>_<split>....json) are not a run's own.
  """
  paths = [path for path in glob.glob(os.path.join(workdir, 'eval_*.json'))
           if re.fullmatch(r'eval_\d+\.json', os.path.basename(path))]
  if not paths:
    return None
  newest = max(paths, key=lambda p: int(re.findall(r'eval_(\d+)', p)[-1]))
  with open(newest) as f:
    return json.load(f)


def is_finished(workdir):
  """True once the run's final evaluation is at the last step of its length."""
  results = final_results(workdir)
  return results is not None and results.get('step', -1) >= results.get(
      'num_steps', float('inf'))


def table_rows(points, workdirs):
  rows = []
  for point, workdir in zip(points, workdirs):
    results = final_results(workdir) or {}
    iw_columns = sorted(k for k in results if re.fullmatch(r'test_iw\d+_nll', k))
    row = dict(point, step=results.get('step', ''))
    row.update({column: results.get(column, '') for column in
                RESULT_COLUMNS + tuple(iw_columns)})
    rows.append(row)
  return rows


def _columns(rows):
  columns = []
  for row in rows:
    columns += [name for name in row if name not in columns]
  return columns


def _cell(value):
  return f'{value:.2f}' if isinstance(value, float) else str(value)


def markdown_table(rows):
  columns = _columns(rows)
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + ' --- |' * len(columns)]
  lines += ['| ' + ' | '.join(_cell(row.get(c, '')) for c in columns) + ' |'
            for row in rows]
  return '\n'.join(lines)


def csv_table(rows):
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=_columns(rows))
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()
