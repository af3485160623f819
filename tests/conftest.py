"""Shared test settings: strict rank promotion, as in the codebases we follow."""
import os
import pathlib

import jax
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

jax.config.update('jax_numpy_rank_promotion', 'raise')
# Many tests start the real program in subprocesses that compile the same
# smoke-sized functions; a shared persistent cache compiles each only once.
# Set through the environment so that those subprocesses inherit it.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      str(REPO_ROOT / '.pytest_cache' / 'jax_compilation'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
jax.config.update('jax_compilation_cache_dir', os.environ['JAX_COMPILATION_CACHE_DIR'])
jax.config.update('jax_persistent_cache_min_compile_time_secs',
                  float(os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS']))


@pytest.fixture(scope='session')
def data_dir():
  """The real data folder: DRAW_DATA_DIR, else ../shared/data beside the repo."""
  path = os.environ.get('DRAW_DATA_DIR') or str(REPO_ROOT.parent / 'shared' / 'data')
  assert pathlib.Path(path).is_dir(), f'no data folder at {path}'
  return path
