"""One elementwise update, timed on the same values in different layouts.

  python scripts/elementwise_shapes.py --iterations 64 --repeats 20

Why the training step keeps its per-step arrays 2-D (model.StepState's flat
canvas, attention._gaussian_filters's flat rows): XLA's CPU backend runs the
same elementwise work on [batch, H, W, C] or [batch, N, A] arrays, whose minor
axis is MNIST's 28 pixels, two to six times slower than on [batch, H*W*C] or
[batch, N*A]. Each shape runs the update c <- c + 0.001 tanh(c) (and an
exponential variant) --iterations times in one jitted loop, as a time step of
the scan does; the line printed per shape is the median microseconds per
update over --repeats calls.
"""
import math
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

# (name, shape): the canvas of the paper's MNIST model at batch 128, then a
# 5 x 28 filterbank (the 5 x 5 write's F_X) at batch 128, each as the model
# used to hold it and as it holds it now.
SHAPES = (
    ('canvas [batch, H, W, C]', (128, 28, 28, 1)),
    ('canvas [batch, H, W]', (128, 28, 28)),
    ('canvas [batch, H*W*C]', (128, 784)),
    ('filters [batch, N, A]', (128, 5, 28)),
    ('filters [batch, N*A]', (128, 140)),
)
UPDATES = {
    'tanh': lambda c: c + 0.001 * jnp.tanh(c),
    'exp': lambda c: 0.5 * c + 0.001 * jnp.exp(-c * c),
}


def define_flags():
  flags.DEFINE_integer('iterations', 64, 'Updates per jitted call, like T.',
                       lower_bound=1)
  flags.DEFINE_integer('repeats', 20, 'Timed calls per shape.', lower_bound=1)


def microseconds_per_update(shape, update, iterations, repeats):
  """Median over repeats of one call's seconds, per update, in microseconds."""
  start_values = jax.random.normal(jax.random.key(0), shape)
  run = jax.jit(lambda c: jax.lax.fori_loop(
      0, iterations, lambda _, c: update(c), c))
  run(start_values).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run(start_values).block_until_ready()
    times.append(time.perf_counter() - start)
  return statistics.median(times) / iterations * 1e6


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  print(f'backend {jax.default_backend()}; microseconds per update, median '
        f'of {flags.FLAGS.repeats} calls of {flags.FLAGS.iterations}')
  for name, shape in SHAPES:
    figures = '; '.join(
        f'{update_name} ' + format(microseconds_per_update(
            shape, update, flags.FLAGS.iterations, flags.FLAGS.repeats), '.1f')
        for update_name, update in UPDATES.items())
    print(f'{name:26s} {math.prod(shape):7d} values: {figures}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
