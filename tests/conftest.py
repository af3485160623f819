"""Shared test settings: strict rank promotion, as in the codebases we follow."""
import os
import pathlib

import jax
import pytest

jax.config.update('jax_numpy_rank_promotion', 'raise')

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def data_dir():
  """The real data folder: DRAW_DATA_DIR, else ../shared/data beside the repo."""
  path = os.environ.get('DRAW_DATA_DIR') or str(REPO_ROOT.parent / 'shared' / 'data')
  assert pathlib.Path(path).is_dir(), f'no data folder at {path}'
  return path
