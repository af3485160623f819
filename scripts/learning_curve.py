"""A run's learning curve: a markdown table and a PNG of -ELBO against epochs.

  python scripts/learning_curve.py --workdir=$HOME/draw_runs/mnist_attn_paper \
      --history=docs/mnist_attn_curve.jsonl --attempt=2 \
      --markdown=docs/results.md --png=docs/mnist_attn_curve.png

One row per evaluation: epoch, images seen, wall hours (summed over every
process that trained the run, including work redone after a kill), and the
valid and test -ELBO; for a run with train.ema_decay those are the moving
average's, and a last column has the training parameters' valid -ELBO. With --markdown, the table replaces what stands between
the file's two CURVE_MARKERS; jbornschein/draw's reported figures and the
paper's bound are drawn beside the curve.

--history keeps a campaign's curve across workdirs. A workdir lost with its
machine is attempt 1; the next (--attempt=2) starts from shipped parameters
(train.init_from with train.init_continue) at their step. The curve is then
attempt 1 up to that step and attempt 2 after it; what attempt 1 did beyond
it is drawn dashed. The history file is rewritten with this attempt's records.
"""
import argparse
import json
import os
import sys

CURVE_MARKERS = ('<!-- learning-curve:start -->', '<!-- learning-curve:end -->')
# jbornschein/draw (Theano), its issue #4: (epoch, test -ELBO reported as
# "under"/"about" that figure).
JBORNSCHEIN = ((50, 90.0), (100, 90.5), (200, 83.0), (300, 81.9))
PAPER_BOUND = 80.97
# A run with a moving average also logs its training parameters' figure.
LIVE_VALID = 'live_valid_neg_elbo'


def read_rows(workdir):
  """metrics.jsonl's rows in order, each with 'wall_hours' added."""
  rows, finished, previous = [], 0.0, None
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue  # a line cut short by a kill
      seconds = row.get('process_seconds')
      if seconds is None:
        continue
      if previous is not None and seconds < previous:
        finished += previous  # a new process: the last one's time is done
      previous = seconds
      rows.append(dict(row, wall_hours=(finished + seconds) / 3600))
  return rows


def evaluations(rows, batch_size):
  """One record per evaluated step, its latest values winning."""
  by_step = {}
  for row in rows:
    if 'valid_neg_elbo' in row or 'test_neg_elbo' in row:
      record = by_step.setdefault(row['step'], dict(step=row['step']))
      for name in ('valid_neg_elbo', 'test_neg_elbo', LIVE_VALID, 'epoch'):
        if name in row:
          record[name] = row[name]
      record['wall_hours'] = row['wall_hours']
  records = [by_step[step] for step in sorted(by_step)]
  for record in records:
    record['images'] = record['step'] * batch_size
  return records


def start_step(config, history, attempt):
  """The step a workdir's run began at, once known kept in the history.

  Its first process's config.json names init_from; a resume rewrites it.
  """
  for record in history:
    if record['attempt'] == attempt:
      return record['start']
  train = config['train']
  if not (train.get('init_from') and train.get('init_continue')):
    return 0
  with open(os.path.join(train['init_from'], 'pretrained.json')) as f:
    return json.load(f)['step']


def read_history(path):
  """A campaign's committed records, or none if the file is new."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def merge(history, records, attempt, start):
  """The history with this attempt's records replaced by the workdir's.

  Each record carries its attempt and the step that attempt started from;
  this attempt's wall hours count on from the curve's record at its start.
  """
  others = [r for r in history if r['attempt'] != attempt]
  earlier = curve(others, attempt - 1) if attempt > 1 else []
  before = [r for r in earlier if r['step'] <= start]
  if start and not before:
    raise ValueError(f'attempt {attempt} starts at step {start:,}, but the '
                     f'history has no earlier record at or before it')
  offset = before[-1]['wall_hours'] if before else 0.0
  mine = [dict(r, attempt=attempt, start=start,
               wall_hours=r['wall_hours'] + offset) for r in records]
  return sorted(others + mine, key=lambda r: (r['attempt'], r['step']))


def curve(history, attempt):
  """The records on attempt's line: its forebears' up to its start, then its."""
  mine = [r for r in history if r['attempt'] == attempt]
  if attempt <= 1 or not mine:
    return mine
  start = mine[0]['start']
  return [r for r in curve(history, attempt - 1) if r['step'] <= start] + mine


def _number(value, digits=2):
  return '' if value is None else f'{value:.{digits}f}'


def markdown_table(records):
  lines = ['| attempt | step | epoch | images seen | wall hours | valid −ELBO '
           '| test −ELBO | valid −ELBO, training parameters |',
           '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for r in records:
    lines.append(f"| {r.get('attempt', 1)} | {r['step']:,} | "
                 f"{r['epoch']:.1f} | {r['images']:,} | "
                 f"{r['wall_hours']:.2f} | {_number(r.get('valid_neg_elbo'))} | "
                 f"{_number(r.get('test_neg_elbo'))} | "
                 f"{_number(r.get(LIVE_VALID))} |")
  return '\n'.join(lines)


def replace_between_markers(text, table):
  start, end = CURVE_MARKERS
  if start not in text or end not in text:
    raise ValueError(f'the markdown file has no {start} ... {end} section')
  head, rest = text.split(start, 1)
  _, tail = rest.split(end, 1)
  return f'{head}{start}\n{table}\n{end}{tail}'


def plot(records, path, title, dropped=()):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(figsize=(7, 4.2), dpi=110)
  for name, label, style in (
      ('valid_neg_elbo', 'draw_jax valid', dict(marker='.')),
      ('test_neg_elbo', 'draw_jax test', dict(marker='.')),
      (LIVE_VALID, 'valid, training parameters (not averaged)',
       dict(color='tab:blue', linestyle=':', linewidth=1))):
    points = [(r['epoch'], r[name]) for r in records if name in r]
    if points:
      axes.plot(*zip(*points), label=label, **style)
  for attempt in sorted({r['attempt'] for r in dropped}):
    points = [(r['epoch'], r['test_neg_elbo']) for r in dropped
              if r['attempt'] == attempt and 'test_neg_elbo' in r]
    if points:
      axes.plot(*zip(*points), color='grey', linestyle='--', marker='.',
                label=f'attempt {attempt} test, not continued')
  axes.plot(*zip(*JBORNSCHEIN), 'ks', fillstyle='none',
            label='jbornschein/draw (reported)')
  axes.axhline(PAPER_BOUND, color='tab:red', linestyle='--',
               label=f'paper: ≤ {PAPER_BOUND}')
  values = [r[n] for r in list(records) + list(dropped)
            for n in ('valid_neg_elbo', 'test_neg_elbo')
            if n in r]
  low = min(values + [PAPER_BOUND]) - 2
  axes.set_ylim(low, min(max(values + [95.0]) + 3, low + 60))
  axes.set_xlim(0, 310)
  axes.set_xlabel('epoch')
  axes.set_ylabel('−ELBO (nats)')
  axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  figure.savefig(path)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--markdown', help='a file with the curve markers')
  parser.add_argument('--png', help='where to draw the curve')
  parser.add_argument('--title', default='DRAW on binarized MNIST')
  parser.add_argument('--history', help='a campaign\'s records (JSON lines), '
                      'read and rewritten with this attempt\'s')
  parser.add_argument('--attempt', type=int, default=1,
                      help='which attempt of the campaign the workdir is')
  parser.add_argument('--from_step', type=int, help='the step the attempt '
                      'started from; default: as the history or the '
                      'workdir\'s config.json (init_from) records it')
  args = parser.parse_args(argv)
  if args.attempt < 1:
    sys.exit(f'error: --attempt must be 1 or more, not {args.attempt}')
  try:
    with open(os.path.join(args.workdir, 'config.json')) as f:
      config = json.load(f)
    records = evaluations(read_rows(args.workdir),
                          config['train']['batch_size'])
  except (OSError, KeyError, ValueError) as error:
    sys.exit(f'error: {args.workdir}: {error}')
  history = []
  if args.history:
    try:
      history = read_history(args.history)
      start = args.from_step
      if start is None:
        start = start_step(config, history, args.attempt)
      history = merge(history, records, args.attempt, start)
    except (OSError, KeyError, ValueError) as error:
      sys.exit(f'error: {args.history}: {error}')
    records = curve(history, args.attempt)
  if not records:
    sys.exit(f'error: {args.workdir} has no evaluations yet')
  table = markdown_table(records)
  if args.markdown:
    with open(args.markdown) as f:
      text = f.read()
    try:
      text = replace_between_markers(text, table)
    except ValueError as error:
      sys.exit(f'error: {args.markdown}: {error}')
    with open(args.markdown, 'w') as f:
      f.write(text)
  else:
    print(table)
  if args.history:
    with open(args.history, 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in history)
  if args.png:
    dropped = [r for r in history if r not in records]
    plot(records, args.png, args.title, dropped)


if __name__ == '__main__':
  main()
