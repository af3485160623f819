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

Every configs/*.py runs, the classifier's (cluttered_mnist_cls) too: it has
no likelihood bound and draws no samples, so its iw{K}_images_per_sec and
sample_images_per_sec are null. A sweep file (configs/sweep_t_read.py) is
not a config: benchmark one of its points, e.g.
--config=configs/mnist_attn.py:T=8,read=2.

The defaults of --eval_examples, --iw_examples and --sample_count keep a CPU
run of the paper's model to a few minutes; raise them on an accelerator, where
calls this small measure dispatch more than compute.
"""
import dataclasses
import json
import os
import resource
import runpy
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

from draw_jax import attention
from draw_jax import classifier
from draw_jax import datasets
from draw_jax import evaluate
from draw_jax import host_memory
from draw_jax import input_pipeline
from draw_jax import model as draw_model
from draw_jax import pictures
from draw_jax import settings as settings_lib
from draw_jax import sweep
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
  splits = datasets.load_for_training(settings.data)
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


def hand_count_train_flops(model_config):
  """Matmul and filterbank FLOPs of one image's training step (forward x 3).

  Counts multiply-adds as 2 FLOPs and nothing elementwise: not the LSTM gate
  nonlinearities, filterbank exponentials, loss, KL or optimizer update.
  Backward is taken as twice the forward (gradients of inputs and weights).
  """
  if isinstance(model_config, classifier.ClassifierConfig):
    return 3 * _classifier_forward_flops(model_config)
  return 3 * _draw_forward_flops(model_config)


def _read_flops(glimpse, height, width, channels):
  """Eq. (27), F_Y x F_X^T: [N, B] @ [B, A C], then the N x N x C glimpse."""
  return (2 * glimpse * height * width * channels
          + 2 * glimpse * glimpse * width * channels)


def _draw_forward_flops(c):
  """DRAW's forward pass over its T steps."""
  step = (
      2 * (c.read_size + c.dec_size + c.enc_size) * _LSTM_GATES * c.enc_size  # eq. (5)
      + 2 * (c.z_size + c.dec_size) * _LSTM_GATES * c.dec_size  # eq. (7)
      + 2 * c.enc_size * 2 * c.z_size  # mean and log sigma, eq. (1)-(2)
      + 2 * c.dec_size * c.write_size)  # the write patch
  if c.attention:
    step += 2 * (2 * c.dec_size * attention.NUM_RAW_PARAMS)  # the heads
    # x and x_hat share one filterbank: one read of 2C channels.
    step += _read_flops(c.read_n, c.height, c.width, 2 * c.channels)
    # Eq. (29), F_Y^T w F_X: [B, N] @ [N, N C], then [B, N C] @ [N, A].
    step += 2 * c.height * c.write_n * c.write_n * c.channels
    step += 2 * c.height * c.write_n * c.width * c.channels
  return step * c.T


def _classifier_forward_flops(c):
  """The glimpse classifier's T glimpses, then its softmax layer once."""
  glimpse = (
      2 * (c.glimpse_size + c.hidden_size) * _LSTM_GATES * c.hidden_size
      + 2 * c.hidden_size * attention.NUM_RAW_PARAMS  # where to look
      + _read_flops(c.glimpse, c.height, c.width, c.channels))
  return glimpse * c.T + 2 * c.hidden_size * c.num_classes


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


def is_generative(model_config):
  """DRAW has a likelihood bound and draws samples; the classifier neither."""
  return isinstance(model_config, draw_model.DrawConfig)


def time_evaluation(evaluator, params, splits, eval_examples, repeats):
  """Test images/s of the split-wide terms: the -ELBO, or the classifier's."""
  images = input_pipeline.strided_subset(splits.test, eval_examples)
  # With the labels where there are any, as the trainer evaluates: the
  # classifier's cross-entropy needs them, DRAW ignores them.
  labels = (None if splits.test_labels is None else
            input_pipeline.strided_subset(splits.test_labels, eval_examples))
  first, seconds, _ = time_calls(
      lambda: evaluator.split_means(params, images, labels), repeats)
  images_per_sec = len(images) / seconds
  what = ('negative ELBO' if is_generative(evaluator.model_config)
          else 'cross-entropy and error')
  print(f'{what}: {images_per_sec:.1f} images/s on {len(images)} '
        f'(first call {first:.2f} s)', flush=True)
  return images_per_sec


def time_iw_bound(evaluator, params, splits, iw_samples, repeats):
  """Images/s of the importance-weighted bound; None for the classifier."""
  if not evaluator.has_iw_bound:
    print('IW bound: not applicable, the model has no likelihood',
          flush=True)
    return None
  # The evaluator takes its own strided subset of config.eval.iw_examples.
  first, seconds, (_, count) = time_calls(
      lambda: evaluator.importance_weighted_nll(params, splits.test,
                                                iw_samples), repeats)
  print(f'IW bound K={iw_samples}: {count / seconds:.2f} images/s on '
        f'{count} (first call {first:.2f} s)', flush=True)
  return count / seconds


def time_sampling(settings, training, params, sample_count, repeats):
  """Generated images/s; None for the classifier, which generates nothing."""
  model_config = training.model_config
  if not is_generative(model_config):
    print('sampling: not applicable, the classifier generates nothing',
          flush=True)
    return None
  sampler = pictures.Sampler(training.graphdef, model_config, training.mesh,
                             settings.data.binarization)
  key = jax.random.key(settings.sample.seed)
  first, seconds, _ = time_calls(
      lambda: sampler.final_samples(params, key, sample_count), repeats)
  print(f'sampling: {sample_count / seconds:.1f} images/s, {sample_count} '
        f'samples of {model_config.T} steps (first call {first:.2f} s)',
        flush=True)
  return sample_count / seconds


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
  # From fresh parameters: where train.init_from starts changes no step's cost.
  settings = dataclasses.replace(settings, train=dataclasses.replace(
      settings.train, init_from='', init_continue=False))
  training, splits = build_training(settings)
  inputs = step_inputs(training)
  model_config, device_count = training.model_config, jax.device_count()
  print(f'{config_name}: T={model_config.T}, batch {batch}, '
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
  hand_per_image = hand_count_train_flops(model_config)
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

  params = state['params']
  evaluator = evaluate.Evaluator(settings, training.graphdef, training.mesh)
  eval_images_per_sec = time_evaluation(evaluator, params, splits,
                                        eval_examples, repeats)
  iw_images_per_sec = time_iw_bound(evaluator, params, splits, iw_samples,
                                    repeats)
  sample_images_per_sec = time_sampling(settings, training, params,
                                        sample_count, repeats)

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
      'T': model_config.T,
      'batch': batch,
      'steps': steps,
      'warmup': warmup,
  }


def config_file(argv):
  """FILE of --config=FILE[:arg] or --config FILE in argv; None if absent."""
  for index, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg[len('--config='):].split(':', 1)[0]
    if arg == '--config' and index + 1 < len(argv):
      return argv[index + 1].split(':', 1)[0]
  return None


def sweep_file_error(path):
  """The one-line error for a sweep file given as --config; None otherwise.

  ml_collections would fail on it with an AttributeError while parsing flags.
  """
  if path is None or not os.path.isfile(path):
    return None  # ml_collections reports a missing file itself
  module = runpy.run_path(path)
  if 'get_config' in module or 'get_sweep' not in module:
    return None
  point = sweep.config_argument(module['get_sweep']()[0])
  return (f'error: {path} is a sweep file for scripts/sweep.py, not a config; '
          f'benchmark one of its points on the config it sweeps, e.g. '
          f'--config=configs/mnist_attn.py:{point}')


def parse_flags(argv):
  """absl's flag parsing, after refusing a sweep file as --config."""
  error = sweep_file_error(config_file(argv[1:]))
  if error:
    sys.exit(error)
  return flags.FLAGS(argv)


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
  app.run(main, flags_parser=parse_flags)
