"""The device mesh, and how arrays are placed on it: replicated or by batch.

Data parallel over every device: parameters are replicated, each batch is
split along DATA_AXIS, and XLA propagates that from one constraint a step.
"""
import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh():
  """A 1-D mesh over every device, of every process."""
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh):
  return NamedSharding(mesh, P())


def batch_sharded(mesh):
  return NamedSharding(mesh, P(DATA_AXIS))


def to_host(tree):
  """numpy copies of replicated arrays, also when they span several processes."""
  return jax.tree.map(lambda leaf: np.asarray(leaf.addressable_data(0)), tree)
