"""Runs a sweep: one real trainer per point, k at a time, then one table.

  python scripts/sweep.py --config=configs/mnist_attn.py \
    --sweep=configs/sweep_t_read.py --root=/tmp/sweep --parallel=2

Points whose workdir already holds their final evaluation are not rerun.
--print_only prints one command per point, for a cluster scheduler.
"""
import os
import runpy
import shlex
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging

# scripts/ is not a package: make the repo's draw_jax and configs importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from draw_jax import sweep  # pylint: disable=wrong-import-position

flags.DEFINE_string('config', None, 'The base config file, e.g. configs/mnist_attn.py.')
flags.DEFINE_string('sweep', None, 'A file whose get_sweep() lists the points.')
flags.DEFINE_string('root', None, 'One workdir per point is made under it.')
flags.DEFINE_integer('parallel', 1, 'Points run at the same time.')
flags.DEFINE_multi_string('extra', [], 'More flags for every point, e.g. '
                          '--extra=--config.train.num_epochs=1.')
flags.DEFINE_bool('print_only', False, 'Print the commands instead of running.')
flags.mark_flags_as_required(['config', 'sweep', 'root'])
FLAGS = flags.FLAGS


def point_command(point, workdir):
  return [sys.executable, '-m', 'draw_jax.main',
          f'--config={FLAGS.config}:{sweep.config_argument(point)}',
          f'--workdir={workdir}', *FLAGS.extra]


def run_all(points, workdirs):
  """Runs the unfinished points, FLAGS.parallel at a time; returns failures."""
  waiting = [(p, w) for p, w in zip(points, workdirs)
             if not sweep.is_finished(w)]
  logging.info('%d of %d points to run', len(waiting), len(points))
  running, failed = [], []
  while waiting or running:
    while waiting and len(running) < FLAGS.parallel:
      point, workdir = waiting.pop(0)
      os.makedirs(workdir, exist_ok=True)
      log = open(os.path.join(workdir, 'sweep.log'), 'a')
      process = subprocess.Popen(point_command(point, workdir), stdout=log,
                                 stderr=subprocess.STDOUT)
      running.append((process, point, log))
      logging.info('started %s', sweep.point_name(point))
    for entry in list(running):
      process, point, log = entry
      if process.poll() is not None:
        running.remove(entry)
        log.close()
        if process.returncode:
          failed.append(point)
        logging.info('%s exited with %d', sweep.point_name(point),
                     process.returncode)
    time.sleep(0.5)
  return failed


def main(argv):
  del argv
  points = runpy.run_path(FLAGS.sweep)['get_sweep']()
  workdirs = [os.path.join(FLAGS.root, sweep.point_name(p)) for p in points]
  if FLAGS.print_only:
    for point, workdir in zip(points, workdirs):
      print(shlex.join(point_command(point, workdir)))
    return
  failed = run_all(points, workdirs)
  rows = sweep.table_rows(points, workdirs)
  with open(os.path.join(FLAGS.root, 'results.md'), 'w') as f:
    f.write(sweep.markdown_table(rows) + '\n')
  with open(os.path.join(FLAGS.root, 'results.csv'), 'w') as f:
    f.write(sweep.csv_table(rows))
  print(sweep.markdown_table(rows))
  if failed:
    sys.exit(f'{len(failed)} point(s) failed: '
             f'{[sweep.point_name(p) for p in failed]}; see their sweep.log')


if __name__ == '__main__':
  app.run(main)
