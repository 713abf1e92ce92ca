"""CRC32 checksums of a state's arrays, one per top-level field.

`checkpoints` writes them beside each checkpoint and checks them after a
restore, so damaged files are refused instead of restored as wrong numbers.
They follow any state tree: a dataclass's pytree fields or a dict's items.
"""

import dataclasses
import zlib
from typing import Any, Mapping

import jax
import numpy as np

from mixae_jax.errors import CheckpointError

# The metadata key of the per-field checksums. Checkpoints written before
# them hold one CRC over the whole tree under 'crc32' (`LEGACY_CRC_KEY`).
CRC_KEY = 'crc32_by_field'
LEGACY_CRC_KEY = 'crc32'


def fingerprint(tree: Any) -> int:
  """CRC32 over the bytes of every array in `tree`, in tree order."""
  crc = 0
  for leaf in jax.device_get(jax.tree.leaves(tree)):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.integer):
      leaf = leaf.astype(np.int64)  # The step may come back as int32 or int64.
    crc = zlib.crc32(np.ascontiguousarray(leaf).tobytes(), crc)
  return crc


def fields(state: Any) -> dict[str, Any]:
  """A state's top-level fields: a dataclass's pytree fields, a dict's items."""
  if isinstance(state, Mapping):
    return dict(state)
  if dataclasses.is_dataclass(state):
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
            if f.metadata.get('pytree_node', True)}
  raise TypeError(f'cannot checkpoint a {type(state).__name__}: use a '
                  'dataclass or a dict of arrays')


def field_fingerprints(state: Any) -> dict[str, int]:
  """`fingerprint` of each top-level field of `state`."""
  return {name: fingerprint(value) for name, value in fields(state).items()}


def check_fingerprints(where: str, expected: Mapping[str, int],
                        restored: Mapping[str, Any]) -> None:
  """Raises CheckpointError if a restored field's CRC is not the saved one."""
  for name, value in restored.items():
    if name in expected and fingerprint(value) != expected[name]:
      raise CheckpointError(
          f'{where} is corrupt: its {name} arrays do not match the checksum '
          'written with them; restore an earlier step or retrain')
