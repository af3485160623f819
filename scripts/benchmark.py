"""Speed, FLOPs and memory of DRAW training, evaluation and sampling.

  python scripts/benchmark.py --config=configs/mnist_attn.py --batch 128 --steps 30 --warmup 5

Runs on whatever backend JAX finds. Training is timed with the trainer's own
jitted step (train.make_train_step on the real training split, built as
train.train_and_evaluate builds it), so the figure cannot drift from training.
Readable lines come first; the last line printed is one JSON object whose keys
are listed in REQUIRED_KEYS, plus iw{K}_images_per_sec (K = --iw_samples) and
a few extras. Train images/s come from the median of the timed steps, each
blocked on; train_gflops_per_image is XLA's cost analysis of the compiled step
with the T-step loops counted T times (see xla_train_flops), and
hand_gflops_per_image the matmul-only count of hand_count_train_flops;
roofline_fraction is achieved GFLOP/s over a measured [batch, 520] @ [520, 1024]
float32 matmul's GFLOP/s on each device.

The defaults of --eval_examples, --iw_examples and --sample_count keep a CPU
run of the paper's model to a few minutes; raise them on an accelerator, where
calls this small measure dispatch more than compute.
"""
import dataclasses
import json
import os
import resource
import statistics
import sys
import time

# The repo root goes first on sys.path, so that this checkout's draw_jax is
# the one timed, installed or not.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags

from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import host_memory
from draw_jax import input_pipeline
from draw_jax import layers
from draw_jax import sampling
from draw_jax import settings as settings_lib
from draw_jax import train
from draw_jax import train_state
# pylint: enable=g-import-not-at-top,wrong-import-position

REQUIRED_KEYS = (
    'train_images_per_sec', 'compile_sec', 'eval_images_per_sec',
    'sample_images_per_sec', 'train_gflops_per_image', 'hand_gflops_per_image',
    'achieved_gflops', 'matmul_gflops', 'roofline_fraction', 'peak_rss_mb',
    'backend', 'device_count', 'config', 'T', 'batch')
# The encoder-gate matmul of the paper's model: [x-glimpse, x_hat-glimpse,
# h_dec, h_enc] = 8 + 256 + 256 inputs -> 4 x 256 gates.
MATMUL_INNER, MATMUL_OUTER = 520, 1024
_LSTM_GATES = 4


def define_flags():
  """Registers the flags; under __main__ only, so tests can import this file.

  A process that also imports draw_jax.main would otherwise define --config twice.
  """
  config_flags.DEFINE_config_file(
      'config', None, 'A configs/*.py file, optionally with :name=value,...',
      lock_config=True)
  flags.DEFINE_integer('batch', None, 'Training batch; overrides '
                       'config.train.batch_size when given.', lower_bound=1)
  flags.DEFINE_integer('steps', 30, 'Timed training steps.', lower_bound=1)
  flags.DEFINE_integer('warmup', 5, 'Untimed training steps before them.',
                       lower_bound=0)
  flags.mark_flags_as_required(['config'])
  flags.DEFINE_integer('iw_samples', 100, 'K of the importance-weighted bound.',
                       lower_bound=1)
  flags.DEFINE_integer('eval_examples', 1000, 'Test images for the ELBO timing.',
                       lower_bound=1)
  flags.DEFINE_integer('iw_examples', 10, 'Test images for the IW-bound timing.',
                       lower_bound=1)
  flags.DEFINE_integer('sample_count', 1000, 'Samples for the generation timing.',
                       lower_bound=1)
  flags.DEFINE_integer('repeats', 3, 'Timed calls of each evaluation and of '
                       'sampling, after one untimed call that compiles.',
                       lower_bound=1)
  flags.DEFINE_integer('matmul_repeats', 50, 'Timed calls of the reference '
                       'matmul.', lower_bound=1)


# ---- the trainer's step -----------------------------------------------------


def build_training(settings):
  """The trainer's own state, on-device train split, epoch order and step."""
  data = settings.data
  splits = input_pipeline.load_splits(data.name, data.dir, data.max_examples)
  return train.build_training(settings, splits), splits


def step_inputs(training):
  """The step's arguments after the state: (train data, epoch order, key)."""
  return training.train_data, training.epoch_order(0), training.train_key


def compile_step(train_step, state, inputs):
  """(compiled, lower seconds, lower + compile seconds) of the jitted step."""
  start = time.perf_counter()
  lowered = train_step.lower(state, *inputs)
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  return compiled, lowered_at - start, time.perf_counter() - start


def time_training(compiled, state, inputs, warmup, steps):
  """Seconds of each timed step, each blocked on; returns (state, metrics, times)."""
  step_metrics = None
  for _ in range(warmup):
    state, step_metrics = compiled(state, *inputs)
    jax.block_until_ready((state, step_metrics))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, step_metrics = compiled(state, *inputs)
    jax.block_until_ready((state, step_metrics))
    times.append(time.perf_counter() - start)
  return state, step_metrics, times


def time_pipelined(compiled, state, inputs, steps):
  """Seconds per step when steps are dispatched back to back, as the trainer does."""
  start = time.perf_counter()
  for _ in range(steps):
    state, step_metrics = compiled(state, *inputs)
  jax.block_until_ready((state, step_metrics))
  return state, (time.perf_counter() - start) / steps


# ---- FLOPs --------------------------------------------------------------------


def cost_flops(compiled):
  """'flops' of compiled.cost_analysis(): a dict in jax 0.10; older jax gave a
  list with one dict per program, of which an SPMD step has one."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis['flops'])


@dataclasses.dataclass
class XlaFlops:
  """XLA's FLOP counts of one train step (whole batch, one device's program)."""
  rolled: float  # compiled.cost_analysis() as is: each scan body counted once
  per_time_step: float  # one more of the T steps, forward and backward
  total: float  # rolled + (T - 1) * per_time_step


def xla_train_flops(settings, training, splits, compiled):
  """XLA's count for the compiled step, with the T-step scans counted T times.

  XLA's HloCostAnalysis counts a while loop's body once whatever its trip
  count, so the compiled step's own figure holds one of the T steps. The same
  step compiled with the model's scans unrolled two steps per trip costs one
  step more (two more when T is odd: jax runs the T % 2 remainder outside the
  loop; T = 2 is fully unrolled). If XLA unrolled the loops itself, the two
  counts agree and the total is the rolled count, which is then complete.
  """
  rolled = cost_flops(compiled)
  T = training.model_config.T
  if T == 1:
    return XlaFlops(rolled, 0.0, rolled)
  unrolled = train.build_training(dataclasses.replace(
      settings, model=dataclasses.replace(settings.model, scan_unroll=2)),
                                   splits)
  twice = cost_flops(unrolled.train_step.lower(
      training.state, *step_inputs(training)).compile())
  per_time_step = (twice - rolled) / (1 + T % 2)
  return XlaFlops(rolled, per_time_step, rolled + (T - 1) * per_time_step)


def hand_count_train_flops(draw_config):
  """Matmul and filterbank FLOPs of one image's training step (forward x 3, x T).

  Counts multiply-adds as 2 FLOPs and nothing elementwise: not the LSTM gate
  nonlinearities, filterbank exponentials, loss, KL or optimizer update.
  Backward is taken as twice the forward (gradients of inputs and weights).
  """
  c = draw_config
  forward = (
      2 * (c.read_size + c.dec_size + c.enc_size) * _LSTM_GATES * c.enc_size  # eq. (5)
      + 2 * (c.z_size + c.dec_size) * _LSTM_GATES * c.dec_size  # eq. (7)
      + 2 * c.enc_size * 2 * c.z_size  # mean and log sigma, eq. (1)-(2)
      + 2 * c.dec_size * c.write_size)  # the write patch
  if c.attention:
    forward += 2 * (2 * c.dec_size * layers.NUM_ATTENTION_PARAMS)  # the heads
    read_channels = 2 * c.channels  # x and x_hat share one filterbank
    # Eq. (27), F_Y x F_X^T: [N, B] @ [B, A C'], then the N x N x C' glimpse.
    forward += 2 * c.read_n * c.height * c.width * read_channels
    forward += 2 * c.read_n * c.read_n * c.width * read_channels
    # Eq. (29), F_Y^T w F_X: [B, N] @ [N, N C], then [B, N C] @ [N, A].
    forward += 2 * c.height * c.write_n * c.write_n * c.channels
    forward += 2 * c.height * c.write_n * c.width * c.channels
  return 3 * forward * c.T


# ---- evaluation, sampling, reference matmul ----------------------------------


def time_calls(call, repeats):
  """(first call's seconds, median seconds of `repeats` more, last result).

  `call` must block until its result is on the host.
  """
  start = time.perf_counter()
  result = call()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = call()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times), result


def matmul_gflops(batch, repeats):
  """Measured float32 GFLOP/s of a jitted [batch, 520] @ [520, 1024] product."""
  a_key, b_key = jax.random.split(jax.random.key(0))
  a = jax.random.normal(a_key, (batch, MATMUL_INNER), jnp.float32)
  b = jax.random.normal(b_key, (MATMUL_INNER, MATMUL_OUTER), jnp.float32)
  product = jax.jit(jnp.matmul)
  _, seconds, _ = time_calls(lambda: jax.block_until_ready(product(a, b)),
                            repeats)
  return 2 * batch * MATMUL_INNER * MATMUL_OUTER / seconds / 1e9


def _round_up(number, multiple):
  return -(-number // multiple) * multiple


def iw_key(num_samples):
  return f'iw{num_samples}_images_per_sec'


def peak_rss_mb():
  # ru_maxrss is in kilobytes on Linux.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def device_peak_mb():
  """Peak bytes in use on the first device, in MB; None where not reported (CPU)."""
  stats = jax.local_devices()[0].memory_stats()
  if not stats or 'peak_bytes_in_use' not in stats:
    return None
  return stats['peak_bytes_in_use'] / 2**20


# ---- the program ----------------------------------------------------------------


def run(config, config_name, *, steps, warmup, iw_samples, eval_examples,
        iw_examples, sample_count, repeats, matmul_repeats):
  """Every measurement; prints readable lines and returns the result dict."""
  batch = config.train.batch_size
  # Batches no larger than the subsets (rounded up to divide over the
  # devices), so a small subset is not padded to a full evaluation batch.
  devices = jax.device_count()
  config.eval.batch_size = min(config.eval.batch_size,
                               _round_up(eval_examples, devices))
  config.eval.iw_batch_size = min(config.eval.iw_batch_size,
                                  _round_up(iw_examples, devices))
  config.eval.iw_examples = iw_examples
  settings = settings_lib.parse(config)
  training, splits = build_training(settings)
  inputs = step_inputs(training)
  draw_config, device_count = training.model_config, jax.device_count()
  print(f'{config_name}: T={draw_config.T}, batch {batch}, '
        f'{train_state.parameter_count(training.state["params"]):,} parameters, '
        f'{device_count} {jax.default_backend()} device(s) '
        f'({jax.devices()[0].device_kind}), jax {jax.__version__}', flush=True)
  thp_mode = host_memory.thp_mode()
  huge_pages = host_memory.huge_pages_requested()
  if jax.default_backend() == 'cpu':
    print(f'transparent huge pages: {thp_mode}; glibc asks for them: '
          f'{huge_pages}', flush=True)
    hint = host_memory.huge_page_hint(thp_mode)
    if hint:
      print(hint, flush=True)

  compiled, lower_sec, compile_sec = compile_step(
      training.train_step, training.state, inputs)
  print(f'compile: {compile_sec:.2f} s (lowering {lower_sec:.2f} s)', flush=True)
  memory = compiled.memory_analysis()
  temp_mb = memory.temp_size_in_bytes / 2**20 if memory is not None else None
  flop_counts = xla_train_flops(settings, training, splits, compiled)

  state, step_metrics, times = time_training(
      compiled, training.state, inputs, warmup, steps)
  step_sec = statistics.median(times)
  train_images_per_sec = batch / step_sec
  state, pipelined_sec = time_pipelined(compiled, state, inputs, steps)
  final_loss = float(step_metrics['loss'])
  print(f'train: {train_images_per_sec:.1f} images/s (median step {step_sec * 1e3:.2f} ms '
        f'of {steps}, min {min(times) * 1e3:.2f}, max {max(times) * 1e3:.2f}); '
        f'back-to-back dispatch {batch / pipelined_sec:.1f} images/s; '
        f'loss {final_loss:.2f}', flush=True)

  # The SPMD program is one device's share of the batch.
  xla_per_image = flop_counts.total * device_count / batch
  hand_per_image = hand_count_train_flops(draw_config)
  achieved = xla_per_image * train_images_per_sec / 1e9
  matmul = matmul_gflops(batch, matmul_repeats)
  roofline_fraction = achieved / (matmul * device_count)
  print(f'flops/image: XLA {xla_per_image / 1e9:.4f} GFLOP (loop body once: '
        f'{flop_counts.rolled * device_count / batch / 1e9:.4f}), hand count '
        f'{hand_per_image / 1e9:.4f} GFLOP, XLA/hand {xla_per_image / hand_per_image:.2f}',
        flush=True)
  print(f'achieved {achieved:.1f} GFLOP/s; {batch}x{MATMUL_INNER} @ '
        f'{MATMUL_INNER}x{MATMUL_OUTER} matmul {matmul:.1f} GFLOP/s; '
        f'fraction {roofline_fraction:.3f}', flush=True)

  binarization = settings.data.binarization
  evaluator = evaluate.Evaluator(training.graphdef, draw_config, training.mesh,
                                 binarization, settings.eval,
                                 settings.train.seed)
  params = state['params']
  eval_images = input_pipeline.strided_subset(splits.test, eval_examples)
  eval_first, eval_sec, _ = time_calls(
      lambda: evaluator.split_means(params, eval_images), repeats)
  eval_images_per_sec = len(eval_images) / eval_sec
  print(f'negative ELBO: {eval_images_per_sec:.1f} images/s on {len(eval_images)} '
        f'(first call {eval_first:.2f} s)', flush=True)

  # The evaluator takes its own strided subset of config.eval.iw_examples.
  iw_first, iw_sec, (_, iw_count) = time_calls(
      lambda: evaluator.importance_weighted_nll(params, splits.test,
                                                iw_samples), repeats)
  iw_images_per_sec = iw_count / iw_sec
  print(f'IW bound K={iw_samples}: {iw_images_per_sec:.2f} images/s on '
        f'{iw_count} (first call {iw_first:.2f} s)', flush=True)

  sampler = sampling.Sampler(training.graphdef, draw_config, training.mesh,
                             binarization)
  sample_key = jax.random.key(settings.sample.seed)
  sample_first, sample_sec, _ = time_calls(
      lambda: sampler.final_samples(params, sample_key, sample_count), repeats)
  sample_images_per_sec = sample_count / sample_sec
  print(f'sampling: {sample_images_per_sec:.1f} images/s, {sample_count} samples '
        f'of {draw_config.T} steps (first call {sample_first:.2f} s)', flush=True)

  rss, device_mb = peak_rss_mb(), device_peak_mb()
  print(f'memory: peak host RSS {rss:.0f} MB; device peak '
        f'{"n/a" if device_mb is None else f"{device_mb:.0f} MB"}; step temp '
        f'{"n/a" if temp_mb is None else f"{temp_mb:.1f} MB"}', flush=True)
  return {
      'train_images_per_sec': train_images_per_sec,
      'train_images_per_sec_pipelined': batch / pipelined_sec,
      'compile_sec': compile_sec,
      'lower_sec': lower_sec,
      'eval_images_per_sec': eval_images_per_sec,
      'sample_images_per_sec': sample_images_per_sec,
      iw_key(iw_samples): iw_images_per_sec,
      'iw_samples': iw_samples,
      'train_gflops_per_image': xla_per_image / 1e9,
      'train_gflops_per_image_loop_body_once': (
          flop_counts.rolled * device_count / batch / 1e9),
      'hand_gflops_per_image': hand_per_image / 1e9,
      'xla_to_hand_ratio': xla_per_image / hand_per_image,
      'achieved_gflops': achieved,
      'matmul_gflops': matmul,
      'roofline_fraction': roofline_fraction,
      'peak_rss_mb': rss,
      'device_peak_mb': device_mb,
      'train_step_temp_mb': temp_mb,
      'final_train_loss': final_loss,
      'backend': jax.default_backend(),
      'device_kind': jax.devices()[0].device_kind,
      'device_count': device_count,
      'jax_version': jax.__version__,
      # Host memory settings that change CPU step times (host_memory.py).
      'thp_mode': thp_mode,
      'glibc_huge_pages': huge_pages,
      'config': config_name,
      'T': draw_config.T,
      'batch': batch,
      'steps': steps,
      'warmup': warmup,
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = flags.FLAGS.config
  if flags.FLAGS.batch is not None:
    config.train.batch_size = flags.FLAGS.batch
  config_name = config_flags.get_config_filename(flags.FLAGS['config'])
  try:
    result = run(config, config_name, steps=flags.FLAGS.steps,
                 warmup=flags.FLAGS.warmup, iw_samples=flags.FLAGS.iw_samples,
                 eval_examples=flags.FLAGS.eval_examples,
                 iw_examples=flags.FLAGS.iw_examples,
                 sample_count=flags.FLAGS.sample_count,
                 repeats=flags.FLAGS.repeats,
                 matmul_repeats=flags.FLAGS.matmul_repeats)
  except (settings_lib.ConfigError, datasets.DataError) as error:
    sys.exit(f'error: {error}')
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
