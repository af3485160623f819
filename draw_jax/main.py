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
from draw_jax import evaluate
from draw_jax import experiment
from draw_jax import input_pipeline
from draw_jax import sampling
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
MODES = {
    'train': train.train_and_evaluate,
    'eval': evaluate.evaluate,
    'sample': sampling.sample,
}
# Errors caused by the user's input: one clear line and exit code 1.
USER_ERRORS = (experiment.ConfigError, input_pipeline.DataError,
               checkpoints.CheckpointMismatchError,
               checkpoints.NoReadableCheckpointError, workdirs.WorkdirError,
               workdirs.DiskFullError,
               train.NonFiniteLossError, FileNotFoundError)


def _quiet_orbax(record):
  """Keeps Orbax's per-save INFO lines out of the progress log."""
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_quiet_orbax)
  initialize_distributed()
  try:
    MODES[FLAGS.mode](FLAGS.config, FLAGS.workdir)
  except USER_ERRORS as error:
    logging.error('%s', error)
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  app.run(main)
