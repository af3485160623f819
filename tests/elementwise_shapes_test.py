"""scripts/elementwise_shapes.py: every shape timed, at a tiny size.

No test asserts a time: times depend on the machine and its load.
"""
import math
import os
import pathlib
import re
import subprocess
import sys

import script_modules

REPO = pathlib.Path(__file__).resolve().parents[1]
elementwise_shapes = script_modules.load('elementwise_shapes')


def test_prints_both_updates_for_every_shape():
  completed = subprocess.run(
      [sys.executable, str(REPO / 'scripts' / 'elementwise_shapes.py'),
       '--iterations', '2', '--repeats', '1'],
      cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'),
      capture_output=True, text=True, timeout=300)
  assert completed.returncode == 0, completed.stderr[-4000:]
  lines = completed.stdout.strip().splitlines()[1:]
  assert len(lines) == len(elementwise_shapes.SHAPES)
  for line, (name, shape) in zip(lines, elementwise_shapes.SHAPES):
    match = re.fullmatch(
        re.escape(name) + r' +(\d+) values: tanh ([\d.]+); exp ([\d.]+)', line)
    assert match, line
    assert int(match[1]) == math.prod(shape)
    assert float(match[2]) > 0 and float(match[3]) > 0


def test_each_pair_of_layouts_holds_the_same_values():
  # The comparison is fair only if both layouts of an array hold as many values.
  sizes = {}
  for name, shape in elementwise_shapes.SHAPES:
    sizes.setdefault(name.split()[0], set()).add(math.prod(shape))
  assert sizes == {'canvas': {128 * 784}, 'filters': {128 * 140}}
