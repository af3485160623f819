"""Two versions of draw_jax modules, timed in one process, step by step.

  git show HEAD~1:draw_jax/attention.py > /tmp/attention_before.py
  python scripts/compare_step.py --config=configs/mnist_attn.py \\
      --module=attention --before=/tmp/attention_before.py --rounds 30

Several modules at once take lists in the same order:
--module=model,attention --before=/tmp/model_before.py,/tmp/attention_before.py

On this shared 2-core machine the same program runs 10-20% faster or slower
from one process to the next and one minute to the next, so two
profile_step.py runs cannot show a 4% change. This script builds the trainer's
step twice in one process, once with the definitions of the module files given
by --before put in place of those of the draw_jax modules and once with the
checkout's, then alternates: a few steps of one, a few of the other, --rounds
times. Both see the same load, and the medians compare them.

It swaps what the module defines at its top level, functions and classes,
which the trainer looks up when it builds the step; a name imported
elsewhere with `from draw_jax.<module> import name` keeps the checkout's.
"""
import importlib
import importlib.util
import inspect
import os
import statistics
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.join(REPO_ROOT, 'scripts'))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags

import benchmark
from draw_jax import experiment
from draw_jax import input_pipeline
# pylint: enable=g-import-not-at-top,wrong-import-position


def define_flags():
  benchmark.define_step_flags(steps=3, warmup=3)
  flags.DEFINE_list('module', None, 'draw_jax module names, e.g. attention.')
  flags.DEFINE_list('before', None, 'For each module, a file holding its '
                    'earlier version, e.g. from `git show '
                    'REV:draw_jax/<module>.py`.')
  flags.DEFINE_integer('rounds', 20, 'Alternations; each times --steps steps '
                       'of one version, then of the other.', lower_bound=1)
  flags.mark_flags_as_required(['module', 'before'])


def module_definitions(module):
  """{name: function or class} for those a module itself defines."""
  return {name: value for name, value in vars(module).items()
          if (inspect.isfunction(value) or inspect.isclass(value)) and
          value.__module__ == module.__name__}


def load_file_as_module(path, name):
  if not os.path.isfile(path):
    raise FileNotFoundError(f'--before={path!r} is not a file')
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def earlier_definitions(module_name, before_path):
  """(module, {name: before_path's definition}) for the names both define."""
  module = importlib.import_module(f'draw_jax.{module_name}')
  after_definitions = module_definitions(module)
  before = load_file_as_module(before_path, f'{module_name}_before')
  before_definitions = module_definitions(before)
  shared = set(after_definitions) & set(before_definitions)
  if not shared:
    raise ValueError(f'{before_path} defines none of draw_jax.{module_name}\'s '
                     'functions or classes')
  return module, {name: before_definitions[name] for name in sorted(shared)}


def build_both(config, module_names, before_paths):
  """{'before': ..., 'after': ...}: benchmark.compiled_training, built in turn.

  Each build makes a new jitted step, so each traces the functions in place
  at that moment.
  """
  if len(module_names) != len(before_paths):
    raise ValueError(f'{len(module_names)} modules but {len(before_paths)} '
                     '--before files; give one file per module')
  swaps = [earlier_definitions(name, path)
           for name, path in zip(module_names, before_paths)]
  checkout = [(module, {name: getattr(module, name) for name in earlier})
              for module, earlier in swaps]
  try:
    for module, earlier in swaps:
      for name, definition in earlier.items():
        setattr(module, name, definition)
    built = {'before': benchmark.compiled_training(config)}
  finally:
    for module, definitions in checkout:
      for name, definition in definitions.items():
        setattr(module, name, definition)
  built['after'] = benchmark.compiled_training(config)
  return built


def alternate(built, *, warmup, steps, rounds):
  """{version: [seconds of each timed step]}, the versions taking turns.

  Which goes first swaps every round, so neither gains from its place.
  """
  states = {}
  for version, (training, order, compiled, _) in built.items():
    states[version], _, _ = benchmark.time_training(
        compiled, training.state, training.train_data, order, warmup, 0)
  times = {version: [] for version in built}
  versions = list(built)
  for round_index in range(rounds):
    for version in versions[::-1] if round_index % 2 else versions:
      training, order, compiled, _ = built[version]
      states[version], _, round_times = benchmark.time_training(
          compiled, states[version], training.train_data, order, 0, steps)
      times[version].extend(round_times)
  return times


def summary_line(times, batch):
  """Each version's median images/s, and after over before."""
  medians = {version: statistics.median(t) for version, t in times.items()}
  parts = [f'{version} {batch / seconds:.1f} images/s ({seconds * 1e3:.1f} ms)'
           for version, seconds in medians.items()]
  speedup = medians['before'] / medians['after']
  return (f'{"; ".join(parts)}; after/before {speedup:.3f} '
          f'over {len(times["after"])} steps each')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = benchmark.config_from_flags()
  try:
    built = build_both(config, flags.FLAGS.module, flags.FLAGS.before)
  except (experiment.ConfigError, input_pipeline.DataError, FileNotFoundError,
          ModuleNotFoundError, ValueError) as error:
    sys.exit(f'error: {error}')
  times = alternate(built, warmup=flags.FLAGS.warmup, steps=flags.FLAGS.steps,
                    rounds=flags.FLAGS.rounds)
  print(summary_line(times, config.train.batch_size))


if __name__ == '__main__':
  define_flags()
  app.run(main)
