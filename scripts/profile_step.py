"""Where the time of one training step goes: XLA's ops ranked by time.

  python scripts/profile_step.py --config=configs/mnist_attn.py --steps 10 --top 25

Times the trainer's own compiled step (the one scripts/benchmark.py times),
then records a few more steps with the JAX profiler and ranks the XLA ops
(fusions, dots, copies) by their total time per step. This is the tool behind
the lever table in README.md's Performance section: a change is kept when the
median step gets faster. The op names match the optimized HLO that
XLA_FLAGS=--xla_dump_to=DIR --xla_dump_hlo_as_text writes.

On a CPU with several cores the executor runs independent ops at once, so the
per-op times can add up to more than the step.
"""
import collections
import glob
import gzip
import json
import os
import resource
import statistics
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.join(REPO_ROOT, 'scripts'))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax

import benchmark
from draw_jax import experiment
from draw_jax import input_pipeline
# pylint: enable=g-import-not-at-top,wrong-import-position

# Trace events that wrap the step rather than being one of its ops.
_NOT_AN_OP = ('ThunkExecutor', '$', 'SlinkyThreadPool', 'PjitFunction',
              'PjRt', 'CommonPjRt')


def define_flags():
  benchmark.define_step_flags(steps=10, warmup=3)
  flags.DEFINE_integer('trace_steps', 3, 'Steps recorded by the profiler.',
                       lower_bound=1)
  flags.DEFINE_integer('top', 25, 'Ops to list; 0 skips the trace.',
                       lower_bound=0)


def minor_page_faults():
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def op_milliseconds_per_step(trace_dir, steps):
  """{op name: (milliseconds per step, calls per step)} from a trace folder."""
  trace_file = sorted(glob.glob(os.path.join(trace_dir, '**',
                                             '*.trace.json.gz'),
                                recursive=True))[-1]
  with gzip.open(trace_file) as f:
    events = json.load(f)['traceEvents']
  micros, calls = collections.Counter(), collections.Counter()
  for event in events:
    name = event.get('name', '')
    if event.get('ph') != 'X' or name.startswith(_NOT_AN_OP):
      continue
    micros[name] += event['dur']
    calls[name] += 1
  return {name: (total / 1e3 / steps, calls[name] / steps)
          for name, total in micros.items()}


def profile(config, *, steps, warmup, trace_steps, top):
  training, epoch_order, compiled, compile_sec = benchmark.compiled_training(
      config)
  faults_before = minor_page_faults()
  state, _, times = benchmark.time_training(
      compiled, training.state, training.train_data, epoch_order, warmup,
      steps)
  faults_per_step = (minor_page_faults() - faults_before) / (warmup + steps)
  step_sec = statistics.median(times)
  print(f'compile {compile_sec:.2f} s; median step {step_sec * 1e3:.1f} ms '
        f'({config.train.batch_size / step_sec:.1f} images/s) of {steps}; '
        f'{faults_per_step:.0f} minor page faults per step', flush=True)
  if not top:
    return
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    benchmark.time_training(compiled, state, training.train_data, epoch_order,
                            0, trace_steps)
    jax.profiler.stop_trace()
    ops = op_milliseconds_per_step(trace_dir, trace_steps)
  ranked = sorted(ops.items(), key=lambda item: -item[1][0])
  print(f'ops by time per step, {trace_steps} traced steps '
        f'(sum of all ops {sum(ms for ms, _ in ops.values()):.1f} ms):')
  for name, (ms, calls) in ranked[:top]:
    print(f'{ms:9.1f} ms  {calls:6.0f} calls  {name}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    profile(benchmark.config_from_flags(), steps=flags.FLAGS.steps,
            warmup=flags.FLAGS.warmup, trace_steps=flags.FLAGS.trace_steps,
            top=flags.FLAGS.top)
  except (experiment.ConfigError, input_pipeline.DataError) as error:
    sys.exit(f'error: {error}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
