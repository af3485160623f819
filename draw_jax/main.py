"""The draw_jax program: flags in, hand-off to train, eval or sample.

  python -m draw_jax.main --config=configs/mnist_attn.py --workdir=/tmp/draw
"""
import logging as std_logging
import sys

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from draw_jax import checkpoints
from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import pictures
from draw_jax import settings as settings_lib
from draw_jax import train
from draw_jax import workdirs

config_flags.DEFINE_config_file(
    'config', None, 'A configs/*.py file, optionally with :name=value,...',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and samples go.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'sample'], 'What to run.')
flags.DEFINE_bool('distributed', False,
                  'Multi-process run on a cluster that jax.distributed '
                  'detects itself (TPU pods, SLURM, ...).')
flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0, for multi-process runs elsewhere.')
flags.DEFINE_integer('num_processes', None, 'With --coordinator_address.')
flags.DEFINE_integer('process_id', None, 'With --coordinator_address.')
flags.mark_flags_as_required(['config', 'workdir'])

FLAGS = flags.FLAGS
# Errors caused by the user's input: one clear line and exit code 1.
USER_ERRORS = (settings_lib.ConfigError, datasets.DataError,
               checkpoints.CheckpointMismatchError,
               checkpoints.NoReadableCheckpointError, workdirs.WorkdirError,
               workdirs.DiskFullError,
               train.NonFiniteLossError, FileNotFoundError)


def _quiet_orbax(record):
  """Keeps Orbax's per-save INFO lines out of the progress log.

  A full disk is reported once, by the trainer, not as a traceback from each
  of Orbax's writer threads and of the asyncio tasks they leave behind.
  """
  if 'draw_jax' in record.pathname:
    return True
  if (workdirs.is_disk_full(record.exc_info[1] if record.exc_info else None) or
      'No space left on device' in record.getMessage()):
    return False
  return 'orbax' not in record.pathname or record.levelno >= std_logging.WARNING


def initialize_distributed():
  """Starts JAX's multi-controller runtime when the run has several processes."""
  if not (FLAGS.distributed or FLAGS.coordinator_address):
    return
  # Processes on CPUs need a collectives library to reach each other.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                             num_processes=FLAGS.num_processes,
                             process_id=FLAGS.process_id)
  if jax.default_backend() == 'cpu':
    # jax 0.10: a CPU executable with gloo collectives that is read back from
    # the persistent compilation cache deadlocks at its first collective (the
    # second run of a program hangs), so multi-process CPU runs always compile.
    jax.config.update('jax_enable_compilation_cache', False)
  logging.info('process %d of %d, %d of %d devices local', jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def run_mode(mode, settings, workdir):
  """Trains in workdir, or evaluates or samples the run it holds."""
  if mode == 'train':
    return train.train_and_evaluate(settings, workdir)
  run = checkpoints.load_trained(settings.model, workdir, settings.eval.step)
  if mode == 'eval':
    return evaluate.evaluate(run, settings, workdir)
  return pictures.sample(run, settings, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_quiet_orbax)
  initialize_distributed()
  try:
    run_mode(FLAGS.mode, settings_lib.parse(FLAGS.config), FLAGS.workdir)
  except USER_ERRORS as error:
    if isinstance(error, workdirs.DiskFullError):
      workdirs.quiet_failed_save()  # its leftovers print after our line
    logging.error('%s', error)
    sys.exit(f'error: {error}')
  except KeyboardInterrupt:  # Ctrl-C outside the training loop's own handler
    print('error: interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  app.run(main)
