"""Shared test settings: strict rank promotion, as in the codebases we follow."""
import os
import pathlib

import jax
import pytest

from draw_jax import datasets

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


# The data sets the data-needing tests read; the scenes are built from MNIST.
_TEST_DATA_SETS = ('binarized_mnist', 'mnist')


@pytest.fixture(scope='session')
def data_dir():
  """Where the data-needing tests find the data, as the program does.

  $DRAW_DATA_DIR, else '' (tensorflow-datasets) where its cache holds every
  data set the tests read. Neither: the test is skipped, with the reason, or
  fails where DRAW_TESTS_NEED_DATA=1 (CI, which must run every test).
  """
  folder = os.environ.get('DRAW_DATA_DIR')
  if folder:
    assert pathlib.Path(folder).is_dir(), f'DRAW_DATA_DIR={folder} is no folder'
    return folder
  missing = _missing_from_tfds(_TEST_DATA_SETS)
  if not missing:
    return ''
  reason = (f'no data: DRAW_DATA_DIR is unset and tensorflow-datasets '
            f'has no prepared {", ".join(missing)}')
  if os.environ.get('DRAW_TESTS_NEED_DATA') == '1':
    pytest.fail(reason)
  pytest.skip(reason)


def _missing_from_tfds(names):
  """The data sets of names that tensorflow-datasets cannot give offline."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return list(names)
  return [name for name in names
          if not tfds.builder(datasets.DATASETS[name].tfds[0]).is_prepared()]


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
