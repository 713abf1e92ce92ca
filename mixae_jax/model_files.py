"""A model folder anyone can load: ``model.safetensors`` beside ``config.json``.

The weights file holds the model's variables under flat, readable names,
the tree's keys joined by dots::

  params.ConvBlock_0.Conv_0.kernel        float16 [3, 3, 3, 32]
  batch_stats.ConvBlock_0.BatchNorm_0.mean float16 [32]

so that NumPy, PyTorch or JAX read it with the `safetensors` package alone,
without orbax, and rebuild the variable tree from the names. Its header's
metadata holds the training step and a CRC32 of the arrays, which
`read_variables` checks: a damaged file is refused, not half-used.

A folder with this file is a *model folder* (``--mode=export`` writes one;
``pretrained/*`` are such). `read_variables` reads one, or a training
run's orbax checkpoint, for every reader of weights: `Separator.restore`,
``--mode=eval``, ``config.init_from`` and export itself.
"""

import json
import os
from typing import Any

from etils import epath
import jax
import numpy as np

from mixae_jax import atomic_files
from mixae_jax import checkpoints
from mixae_jax import checksums
from mixae_jax.errors import CheckpointError

WEIGHTS_FILE = 'model.safetensors'
FORMAT = 'mixae_jax'  # The header's metadata 'format'.


def is_model_folder(folder: str | os.PathLike[str]) -> bool:
  """Whether `folder` holds an exported model (its weights file)."""
  return (epath.Path(folder) / WEIGHTS_FILE).is_file()


def flatten(variables: dict[str, Any]) -> dict[str, np.ndarray]:
  """``{'params': {...}, 'batch_stats': {...}}`` as ``{'params.a.b': array}``."""
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    flat['.'.join(str(k.key) for k in path)] = np.asarray(leaf)
  return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
  """The inverse of `flatten`: the nested tree, rebuilt from the names."""
  tree: dict[str, Any] = {}
  for name, array in flat.items():
    *parents, leaf = name.split('.')
    node = tree
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = array
  return tree


def write(folder: str | os.PathLike[str], variables: dict[str, Any],
          step: int, dtype: str = 'float16') -> epath.Path:
  """Writes ``<folder>/model.safetensors`` (atomically).

  Args:
    folder: the model folder.
    variables: the model's ``{'params', 'batch_stats'}``.
    step: the training step the weights are from.
    dtype: the float type stored: 'float16' (half the size; the model still
      computes in float32) or 'float32' (exact).
  """
  from safetensors import numpy as safetensors_np  # pylint: disable=g-import-not-at-top

  flat = {name: array.astype(dtype) if np.issubdtype(array.dtype, np.floating)
          else array for name, array in flatten(variables).items()}
  path = epath.Path(folder) / WEIGHTS_FILE
  metadata = {'format': FORMAT, 'step': str(int(step)),
              'crc32': str(checksums.fingerprint(_in_name_order(flat)))}
  with atomic_files.atomic_path(path) as tmp:  # As bytes: the usual mode.
    tmp.write_bytes(safetensors_np.save(flat, metadata=metadata))
  return path


def _in_name_order(flat: dict[str, np.ndarray]) -> list[np.ndarray]:
  return [flat[name] for name in sorted(flat)]


def _read_file(path: epath.Path) -> tuple[dict[str, np.ndarray], int]:
  """The arrays and step of a weights file, checked against its CRC."""
  from safetensors import SafetensorError  # pylint: disable=g-import-not-at-top
  from safetensors import numpy as safetensors_np  # pylint: disable=g-import-not-at-top

  refuse = f'{path} is not a complete mixae_jax model file'
  try:
    data = path.read_bytes()  # One read, local or from a bucket.
    # The format: an 8-byte little-endian header length, then the header.
    size = int.from_bytes(data[:8], 'little')
    metadata = json.loads(data[8:8 + size]).get('__metadata__') or {}
    flat = safetensors_np.load(data)
  except (SafetensorError, OSError, ValueError, AttributeError) as e:
    raise CheckpointError(f'{refuse} ({" ".join(str(e).split())}); export '
                          'it again or restore the original') from None
  if metadata.get('format') != FORMAT or not metadata.get('step', '').isdigit():
    raise CheckpointError(f'{refuse} (its header names no mixae_jax model '
                          'and step); export it with --mode=export')
  if str(checksums.fingerprint(_in_name_order(flat))) != metadata.get('crc32'):
    raise CheckpointError(f'{path} is corrupt: its arrays do not match the '
                          'checksum written with them; export it again or '
                          'restore the original')
  return flat, int(metadata['step'])


def read_variables(folder: str | os.PathLike[str], variables: dict[str, Any],
                   step: int | None = None) -> dict[str, Any]:
  """The model's weights from a model folder or a training run.

  Args:
    folder: a model folder (`is_model_folder`) or a run folder with
      checkpoints.
    variables: the model's ``{'params', 'batch_stats'}``, as arrays or
      ``jax.ShapeDtypeStruct``: the tree and dtypes to read into.
    step: a run's checkpoint step; the latest when None. A model folder
      holds one step only.

  Returns:
    ``{'params', 'batch_stats', 'step'}``, in `variables`' dtypes.

  Raises:
    CheckpointError: no model, a damaged one, or another model's.
  """
  folder = epath.Path(folder)
  if not is_model_folder(folder):
    manager = checkpoints.create_manager(folder, read_only=True)
    try:
      return checkpoints.restore_variables(manager, variables, step)
    finally:
      manager.close()
  path = folder / WEIGHTS_FILE
  flat, saved_step = _read_file(path)
  if step is not None and step != saved_step:
    raise CheckpointError(f'{path} holds step {saved_step} only, not step '
                          f'{step}; leave the step out')
  saved = unflatten(flat)
  saved = {'params': saved.get('params', {}),
           'batch_stats': saved.get('batch_stats', {})}
  mismatch = checkpoints.structure_mismatch(saved, variables,
                                            check_dtypes=False)
  if mismatch:
    raise CheckpointError(
        f'{path} was saved by a different model or config: {mismatch}; use '
        'the config.json saved beside it')
  return checkpoints.cast_like(saved, variables, saved_step)
