"""Shared test settings: strict rank promotion, as in the codebases we follow."""
import os
import pathlib

import jax
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

jax.config.update('jax_numpy_rank_promotion', 'raise')
# The suite compiles a few hundred small programs once each: at test size,
# LLVM's -O2 costs more compile time than it saves in running (a smoke run:
# 35 s cold, 18 s warm at -O2; 25 s and 16 s at -O1). Subprocesses inherit it.
FAST_COMPILE_FLAGS = '--xla_backend_optimization_level=1'
os.environ['XLA_FLAGS'] = ' '.join(
    filter(None, [FAST_COMPILE_FLAGS, os.environ.get('XLA_FLAGS')]))
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


# The modules whose tests start the program in processes, slowest first: with
# pytest.ini's --dist=loadscope the two workers then finish together, instead
# of one waiting on a long module that was handed out last.
_SLOW_MODULES_FIRST = ('reliability_test', 'distributed_test', 'train_test',
                       'benchmark_test', 'scripts_test', 'experiments_test',
                       'model_test', 'pretrained_test', 'tfds_test',
                       'sweep_test', 'notebook_test')


def pytest_collection_modifyitems(items):
  def rank(item):
    module = item.path.stem
    return (_SLOW_MODULES_FIRST.index(module) if module in _SLOW_MODULES_FIRST
            else len(_SLOW_MODULES_FIRST))
  items.sort(key=rank)  # stable: each module keeps its own order
