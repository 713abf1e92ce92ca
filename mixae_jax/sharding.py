"""The device mesh: batches split over every device, parameters replicated."""

from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

DATA_AXIS = 'data'


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over all devices (default: every device) with the 'data' axis."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Arrays split along their first (batch) axis over the mesh."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Arrays copied whole to every device of the mesh."""
  return NamedSharding(mesh, P())


def put(tree: Any, target: jax.sharding.Sharding | None) -> Any:
  """`jax.device_put` of host values that every process holds alike.

  With several processes, `jax.device_put` first checks that each value is
  the same in every process, by gathering it from all of them: the whole
  train pool, every eval batch, every parameter. Here each process copies
  only its own devices' slices, and nothing crosses the network.
  """
  if target is None or jax.process_count() == 1:
    return jax.device_put(tree, target)

  def put_one(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, target, lambda i: x[i])
  return jax.tree.map(put_one, tree)
