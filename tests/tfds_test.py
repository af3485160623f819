"""The online data path through the real tensorflow-datasets, offline.

tfds.testing.mock_data makes tfds.load yield generated examples of each data
set's real features, so these tests run the library's own loading code with
no download. They need the [tfds] extra, which CI installs.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

tfds = pytest.importorskip(
    'tensorflow_datasets',
    reason="tensorflow-datasets is not installed (pip install -e '.[tfds]')")

from draw_jax import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = 60


@pytest.fixture(autouse=True)
def no_data_folder(monkeypatch):
  monkeypatch.delenv('DRAW_DATA_DIR', raising=False)


def test_binarized_mnist_through_tfds_is_binary_and_unlabelled():
  # Values drawn from [0, max_value): binary, as the real set's are.
  with tfds.testing.mock_data(num_examples=EXAMPLES, max_value=2):
    splits = datasets.load_splits('binarized_mnist', '')
  for images in splits.images:
    assert images.shape == (EXAMPLES, 28, 28, 1) and images.dtype == np.uint8
    assert set(np.unique(images)) == {0, 1}
  assert splits.labels == (None, None, None)


def test_binarized_mnist_through_tfds_with_grey_values_is_refused():
  with tfds.testing.mock_data(num_examples=EXAMPLES):  # values up to 254
    with pytest.raises(datasets.DataError,
                       match='binarized_mnist split .* outside {0, 1}'):
      datasets.load_splits('binarized_mnist', '')


def test_mnist_through_tfds_gives_grey_images_and_labels():
  with tfds.testing.mock_data(num_examples=EXAMPLES):
    splits = datasets.load_splits('mnist', '')
  for images, labels in zip(splits.images, splits.labels):
    assert images.shape == (EXAMPLES, 28, 28, 1) and images.dtype == np.uint8
    assert images.max() > 1  # grey, not binary
    assert labels.shape == (EXAMPLES,) and labels.dtype == np.int32
    assert 0 <= labels.min() and labels.max() <= 9


def test_scenes_are_built_from_tfds_mnist():
  with tfds.testing.mock_data(num_examples=EXAMPLES):
    splits = datasets.load_splits('cluttered_mnist', '', max_examples=5)
  assert [images.shape for images in splits.images] == [(5, 100, 100, 1)] * 3
  assert all(labels.shape == (5,) for labels in splits.labels)


# The program itself, as a Colab user's first command runs it (no data folder),
# with tfds mocked: whole splits at once (batch_size=-1) once aborted it here.
_PROGRAM_UNDER_MOCK = '''
import sys
import tensorflow_datasets as tfds
from absl import app
from draw_jax import main
with tfds.testing.mock_data(num_examples=60, max_value=2):
  app.run(main.main, argv=['draw_jax.main'] + sys.argv[1:])
'''


def test_the_program_runs_on_tfds_in_a_process_of_its_own(tmp_path):
  env = {name: value for name, value in os.environ.items()
         if name != 'DRAW_DATA_DIR'}
  completed = subprocess.run(
      [sys.executable, '-c', _PROGRAM_UNDER_MOCK,
       '--config=configs/smoke.py:steps=2', '--config.train.eval_every=2',
       '--config.eval.iw_samples=0', '--config.eval.batch_size=60',
       '--config.sample.outputs=grid', f'--workdir={tmp_path}'],
      cwd=REPO, env=dict(env, JAX_PLATFORMS='cpu'), capture_output=True,
      text=True, timeout=600)
  assert completed.returncode == 0, completed.stderr[-3000:]
  results = json.loads((tmp_path / 'eval_2.json').read_text())  # no data folder
  assert np.isfinite(results['test_neg_elbo'])
