"""A run's learning curve: a markdown table and a PNG of -ELBO against epochs.

  python scripts/learning_curve.py --workdir=$HOME/draw_runs/mnist_attn_paper \
      --history=docs/mnist_attn_curve.jsonl \
      --markdown=docs/results.md --png=docs/mnist_attn_curve.png --every=5

One row per evaluation: step, epoch, wall hours (summed over every process
that trained the run, including work redone after a stop), and the valid and
test -ELBO; for a run with train.ema_decay those are the moving average's,
and a last column has the training parameters' valid -ELBO. With --markdown,
the table replaces what stands between the file's two CURVE_MARKERS;
jbornschein/draw's reported figures and the paper's bound are drawn beside
the curve.

--history is a JSON-lines file of earlier evaluations of the same curve, for
a run that started from another's parameters (train.init_from with
train.init_continue): the curve is the history up to the run's start step,
then the run's evaluations, whose wall hours count on from the history's.
With --workdir the history file is rewritten with that curve; without it,
the table and the PNG are drawn from the history alone.
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
FIELDS = ('step', 'epoch', 'wall_hours', 'valid_neg_elbo', 'test_neg_elbo',
          LIVE_VALID)


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


def evaluations(rows):
  """One record per evaluated step, its latest values winning."""
  by_step = {}
  for row in rows:
    if 'valid_neg_elbo' in row or 'test_neg_elbo' in row:
      record = by_step.setdefault(row['step'], dict(step=row['step']))
      for name in ('valid_neg_elbo', 'test_neg_elbo', LIVE_VALID, 'epoch'):
        if name in row:
          record[name] = row[name]
      record['wall_hours'] = row['wall_hours']
  return [by_step[step] for step in sorted(by_step)]


def start_step(workdir):
  """The step a run began at: its init_from's, with init_continue, else 0."""
  with open(os.path.join(workdir, 'config.json')) as f:
    train = json.load(f)['train']
  if not (train.get('init_from') and train.get('init_continue')):
    return 0
  with open(os.path.join(train['init_from'], 'pretrained.json')) as f:
    return json.load(f)['step']


def read_history(path):
  """Earlier evaluations, in step order, or none if the file is new."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  for record in records:
    missing = {'step', 'epoch', 'wall_hours'} - set(record)
    if missing:
      raise ValueError(f'a record has no {", ".join(sorted(missing))}')
  return sorted(records, key=lambda r: r['step'])


def continue_history(history, records, start):
  """The history up to step start, then records, their hours counted on."""
  before = [r for r in history if r['step'] <= start]
  if start and not before:
    raise ValueError(f'the run starts at step {start:,}, but the history '
                     'has no evaluation at or before it')
  offset = before[-1]['wall_hours'] if before else 0.0
  return before + [dict(r, wall_hours=r['wall_hours'] + offset)
                   for r in records if r['step'] > start]


def thin(records, every):
  """The first record, every every-th, and the last."""
  return [r for i, r in enumerate(records)
          if i == 0 or (i + 1) % every == 0 or i == len(records) - 1]


def _number(value, digits=2):
  return '' if value is None else f'{value:.{digits}f}'


def markdown_table(records):
  lines = ['| step | epoch | wall hours | valid −ELBO | test −ELBO '
           '| valid −ELBO, training parameters |',
           '| ---: | ---: | ---: | ---: | ---: | ---: |']
  for r in records:
    lines.append(f"| {r['step']:,} | {r['epoch']:.1f} | "
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


def plot(records, path, title):
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
  axes.plot(*zip(*JBORNSCHEIN), 'ks', fillstyle='none',
            label='jbornschein/draw (reported)')
  axes.axhline(PAPER_BOUND, color='tab:red', linestyle='--',
               label=f'paper: ≤ {PAPER_BOUND}')
  values = [r[n] for r in records for n in ('valid_neg_elbo', 'test_neg_elbo')
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
  parser.add_argument('--workdir', help='a run\'s workdir (metrics.jsonl, '
                      'config.json)')
  parser.add_argument('--history', help='earlier evaluations (JSON lines); '
                      'rewritten with the run\'s when --workdir is given')
  parser.add_argument('--from_step', type=int, help='the step the run '
                      'started from; default: its config.json\'s init_from, '
                      'with init_continue, else 0')
  parser.add_argument('--markdown', help='a file with the curve markers')
  parser.add_argument('--png', help='where to draw the curve')
  parser.add_argument('--every', type=int, default=1, help='table rows: the '
                      'first evaluation, every n-th and the last (the PNG '
                      'draws them all)')
  parser.add_argument('--title', default='DRAW on binarized MNIST')
  args = parser.parse_args(argv)
  if not (args.workdir or args.history):
    sys.exit('error: give --workdir, --history or both')
  if args.every < 1:
    sys.exit(f'error: --every must be 1 or more, not {args.every}')
  records = []
  if args.workdir:
    try:
      records = evaluations(read_rows(args.workdir))
      start = (args.from_step if args.from_step is not None
               else start_step(args.workdir))
    except (OSError, KeyError, ValueError) as error:
      sys.exit(f'error: {args.workdir}: {error}')
  if args.history:
    try:
      history = read_history(args.history)
      if args.workdir:
        records = continue_history(history, records, start)
      else:
        records = history
    except (OSError, KeyError, ValueError) as error:
      sys.exit(f'error: {args.history}: {error}')
  if not records:
    sys.exit('error: no evaluations yet')
  table = markdown_table(thin(records, args.every))
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
  if args.history and args.workdir:
    with open(args.history, 'w') as f:
      f.writelines(json.dumps({k: r[k] for k in FIELDS if k in r}) + '\n'
                   for r in records)
  if args.png:
    plot(records, args.png, args.title)


if __name__ == '__main__':
  main()
