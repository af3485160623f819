"""Two versions of the training step, timed in one process, step by step.

The versions differ in draw_jax modules, config settings or XLA options.

  git show HEAD~1:draw_jax/attention.py > /tmp/attention_before.py
  python scripts/compare_step.py --config=configs/mnist_attn.py \\
      --module=attention --before=/tmp/attention_before.py --rounds 30

Several modules at once take lists in the same order:
--module=model,attention --before=/tmp/model_before.py,/tmp/attention_before.py

Two settings of the config, e.g. float32 against bfloat16 matmuls, take
--before_config instead of (or with) --module: the "before" step is built from
the config with these fields changed.
  python scripts/compare_step.py --config=configs/mnist_attn.py \\
      --before_config=model.compute_dtype=bfloat16 --rounds 10
and XLA options, --before_xla, which the "before" step alone is compiled with
(XLA_FLAGS would set them for both):
  python scripts/compare_step.py --config=configs/mnist_attn.py \\
      --before_xla=xla_cpu_enable_fast_math=true --rounds 10

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
A --before file need define only the names it changes
(scripts/alternatives/ holds such files).
"""
import ast
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
import jax

import benchmark
from configs import default as default_config
from draw_jax import experiment
from draw_jax import input_pipeline
# pylint: enable=g-import-not-at-top,wrong-import-position


def define_flags():
  benchmark.define_step_flags(steps=3, warmup=3)
  flags.DEFINE_list('module', [], 'draw_jax module names, e.g. attention.')
  flags.DEFINE_list('before', [], 'For each module, a file holding its '
                    'earlier version, e.g. from `git show '
                    'REV:draw_jax/<module>.py`.')
  flags.DEFINE_list('before_config', [], 'field=value settings of the config '
                    'for the "before" step only, as the config file\'s own '
                    'argument takes them, e.g. model.remat=none.')
  flags.DEFINE_list('before_xla', [], 'name=value XLA options the "before" '
                    'step alone is compiled with, e.g. '
                    'xla_cpu_enable_fast_math=true.')
  flags.DEFINE_integer('rounds', 20, 'Alternations; each times --steps steps '
                       'of one version, then of the other.', lower_bound=1)
  flags.register_multi_flags_validator(
      ['module', 'before_config', 'before_xla'],
      lambda values: any(values.values()),
      'give --module and --before, --before_config or --before_xla')


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


def xla_options(settings):
  """{name: value} from 'name=value' strings, for jax's compiler_options.

  true/false are booleans, as XLA_FLAGS writes them; other values are Python
  literals, or strings when they are bare words (CPU_SCHEDULER_TYPE_DEFAULT).
  """
  options = {}
  for setting in settings:
    name, separator, text = setting.partition('=')
    if not separator:
      raise ValueError(f'--before_xla {setting!r} is not name=value')
    if text in ('true', 'false'):
      options[name] = text == 'true'
      continue
    try:
      options[name] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      options[name] = text
  return options


def config_with(config, settings):
  """A copy of config with 'field=value' settings, parsed as the config
  file's own argument is (configs.default.apply_overrides)."""
  try:
    return default_config.apply_overrides(
        config.copy_and_resolve_references(), ','.join(settings))
  except (KeyError, TypeError, ValueError) as error:
    raise ValueError(f'--before_config: {error}') from error


def build_both(config, module_names, before_paths, before_settings=(),
               before_xla=()):
  """{'before': ..., 'after': ...}: benchmark.compiled_training, built in turn.

  Each build makes a new jitted step, so each traces the functions in place
  at that moment. "before" has the modules' earlier definitions, the config
  with before_settings and the XLA options before_xla; "after" the checkout,
  the config itself and XLA's defaults.
  """
  if len(module_names) != len(before_paths):
    raise ValueError(f'{len(module_names)} modules but {len(before_paths)} '
                     '--before files; give one file per module')
  before_config = config_with(config, before_settings)
  compiler_options = xla_options(before_xla) or None
  swaps = [earlier_definitions(name, path)
           for name, path in zip(module_names, before_paths)]
  checkout = [(module, {name: getattr(module, name) for name in earlier})
              for module, earlier in swaps]
  try:
    for module, earlier in swaps:
      for name, definition in earlier.items():
        setattr(module, name, definition)
    built = {'before': benchmark.compiled_training(before_config,
                                                   compiler_options)}
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
    built = build_both(config, flags.FLAGS.module, flags.FLAGS.before,
                       flags.FLAGS.before_config, flags.FLAGS.before_xla)
  except (experiment.ConfigError, input_pipeline.DataError, FileNotFoundError,
          ModuleNotFoundError, ValueError) as error:
    sys.exit(f'error: {error}')
  except jax.errors.JaxRuntimeError as error:  # XLA refused --before_xla
    sys.exit(f'error: --before_xla: {error}')
  times = alternate(built, warmup=flags.FLAGS.warmup, steps=flags.FLAGS.steps,
                    rounds=flags.FLAGS.rounds)
  print(summary_line(times, config.train.batch_size))


if __name__ == '__main__':
  define_flags()
  app.run(main)
