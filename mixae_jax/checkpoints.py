"""Orbax checkpointing of the train state, with errors a user can act on.

Checkpoints live in ``<workdir>/checkpoints/<step>``. Orbax writes each save to
a temporary folder and renames it when complete, so a run killed mid-save
leaves no half checkpoint that `latest_step` would return.

Each save also records a CRC32 of the bytes of each of the state's fields
(``params``, ``opt_state``, ...) in the checkpoint's metadata; a restore
checks the tree's shapes before reading and the CRCs after, so a checkpoint
of another model, or one whose files were damaged, is refused with a clear
error instead of restoring wrong numbers. Nothing here knows the train
state's fields: any dataclass or dict of arrays saves and restores.
"""

import os
import threading
from typing import Any, Mapping

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp

from mixae_jax import checksums
from mixae_jax import paths
from mixae_jax.errors import CheckpointError

CHECKPOINT_DIR = 'checkpoints'


def checkpoint_dir(workdir: str | os.PathLike[str]) -> epath.Path:
  """``<workdir>/checkpoints``, local folders made absolute (orbax needs it)."""
  workdir = epath.Path(workdir)
  return (workdir if paths.is_remote(workdir) else workdir.absolute()
          ) / CHECKPOINT_DIR


def create_manager(workdir: str | os.PathLike[str], *, max_to_keep: int = 3,
                   read_only: bool = False) -> ocp.CheckpointManager:
  """A CheckpointManager over ``<workdir>/checkpoints``.

  Args:
    workdir: the run's folder.
    max_to_keep: how many of the latest checkpoints to keep.
    read_only: open existing checkpoints without creating anything (eval,
      `Separator`).
  """
  directory = checkpoint_dir(workdir)
  if read_only and not directory.is_dir():
    raise CheckpointError(
        f'no checkpoints in {workdir}: {directory} does not '
        'exist; train first (--mode=train) or point --workdir at a run folder')
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else max_to_keep,
      save_interval_steps=0 if read_only else 1,
      create=not read_only, read_only=read_only,
      # Leftovers of a save that was killed are removed, never restored.
      cleanup_tmp_directories=not read_only)
  try:
    return ocp.CheckpointManager(
        directory, options=options,
        item_handlers=ocp.StandardCheckpointHandler())
  except (OSError, ValueError) as e:
    reason = paths.storage_failure(directory, e) or e
    raise CheckpointError(
        f'cannot open checkpoints in {directory}: {reason}') from None


def _save_failed(manager: ocp.CheckpointManager, what: str,
                 reason: str) -> CheckpointError:
  return CheckpointError(
      f'could not save {what} in {manager.directory}: {reason}; free disk '
      'space, make the workdir writable or restore the connection, then '
      'rerun to resume (earlier checkpoints are untouched)')


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Starts saving `state` at `step`; the files are written in the background.

  Raises:
    CheckpointError: this or the previous (background) save failed, e.g. the
      disk is full or the workdir is read-only.
  """
  try:
    manager.save(step, args=ocp.args.StandardSave(state), force=True,
                 custom_metadata={
                     checksums.CRC_KEY: checksums.field_fingerprints(state)})
  except Exception as e:  # pylint: disable=broad-except
    reason = paths.storage_failure(manager.directory, e)
    if reason is None:
      raise
    raise _save_failed(manager, f'the checkpoint of step {step}',
                       reason) from None


# How often a wait for a save to a bucket asks whether the store still answers.
PROBE_SECONDS = 5


class StoreLost(CheckpointError):
  """A save to a bucket failed because the store stopped answering.

  orbax's background threads still wait on it: whoever catches this must
  not wait for them again (`CheckpointManager.wait_until_finished`).
  """


def wait(manager: ocp.CheckpointManager) -> None:
  """Waits for background saves; a failed one raises `CheckpointError`.

  A save to a bucket whose store stops answering would hang: tensorstore
  retries for a quarter of an hour, and orbax waits twenty minutes. Here
  the store is asked every `PROBE_SECONDS` while the save goes on; once
  gcsfs has given up on it too (about a minute of retries), `StoreLost`
  names it. The save never completes, so the last complete checkpoint stays
  the one a resume reads.
  """
  try:
    if paths.is_remote(manager.directory):
      _wait_watching_the_store(manager)
    else:
      manager.wait_until_finished()
  except StoreLost:
    raise
  except Exception as e:  # pylint: disable=broad-except
    reason = paths.storage_failure(manager.directory, e)
    if reason is None:
      raise
    raise _save_failed(manager, 'a checkpoint', reason) from None


def _wait_watching_the_store(manager: ocp.CheckpointManager) -> None:
  """`manager.wait_until_finished()`, failing once the store is gone."""
  done = threading.Event()
  failure: list[BaseException] = []

  def waiter() -> None:
    try:
      manager.wait_until_finished()
    except BaseException as e:  # pylint: disable=broad-except
      failure.append(e)
    finally:
      done.set()

  threading.Thread(target=waiter, daemon=True, name='mixae-save-wait').start()
  while not done.wait(PROBE_SECONDS):
    try:
      manager.directory.stat()  # Not exists(): fsspec's turns errors to False.
    except Exception as e:  # pylint: disable=broad-except
      reason = paths.storage_failure(manager.directory, e)
      if reason is not None:
        raise StoreLost(
            f'could not save a checkpoint in {manager.directory}: {reason} '
            '(the earlier checkpoints are whole: the rerun resumes from the '
            'last)') from None
  if failure:
    raise failure[0]


def _path(keys: tuple[Any, ...]) -> str:
  parts = []
  for k in keys:
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
  return '/'.join(parts)


def _shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """Path -> (shape, dtype) of each array; Python scalars (the step) as ()."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_path(keys): (tuple(np.shape(leaf)),
                        str(np.dtype(leaf.dtype)) if hasattr(leaf, 'dtype') else '')
          for keys, leaf in leaves}


def structure_mismatch(saved: Any, target: Any,
                       check_dtypes: bool = True) -> str | None:
  """Describes the first difference of array paths, shapes or dtypes."""
  have, want = _shapes(saved), _shapes(target)
  for path in want:
    if path not in have:
      return f'the configured model has {path}, the checkpoint does not'
    if have[path][0] != want[path][0] or (
        check_dtypes and want[path][1] and have[path][1] != want[path][1]):
      return (f'{path} is {have[path][0]} {have[path][1]} in the checkpoint but '
              f'{want[path][0]} {want[path][1]} in the configured model')
  for path in have:
    if path not in want:
      return f'the checkpoint has {path}, the configured model does not'
  return None


def _one_line(e: BaseException) -> str:
  return ' '.join(str(e).split('See full TensorStore details')[0].split())[:200]


def _read(where: str, what: str, read: Any) -> Any:
  """Runs an orbax read; any failure becomes one `CheckpointError` line.

  Orbax raises many types (ValueError, tensorstore errors, ...); all mean the
  same to the user: the files are damaged.
  """
  try:
    return read()
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f'{where} is corrupt: {what}{_one_line(e)}') from None


def _saved_tree(manager: ocp.CheckpointManager, step: int | None
                ) -> tuple[int, str, dict[str, Any], Any]:
  """(step, its name for messages, its saved tree's metadata, its CRCs).

  The CRCs are a {field: CRC} dict; for a checkpoint written before
  per-field checksums, one int; or None.

  Raises:
    CheckpointError: no checkpoint, or metadata that cannot be read.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(
        f'no checkpoint found in {manager.directory}; train first '
        '(--mode=train) or point --workdir at a run folder')
  where = f'checkpoint {manager.directory}/{step}'
  def metadata():
    custom = manager.metadata(step).custom_metadata
    return (dict(manager.item_metadata(step)),
            custom.get(checksums.CRC_KEY,
                       custom.get(checksums.LEGACY_CRC_KEY)))
  saved, crc = _read(where, 'its metadata cannot be read: ', metadata)
  return step, where, saved, crc


def restore(manager: ocp.CheckpointManager, target: Any,
            step: int | None = None) -> Any:
  """Restores the checkpoint at `step` (default: latest) into `target`'s shape.

  A field of `target` that holds no arrays may be absent on disk (it keeps
  its value), and a field on disk that holds none may be absent from
  `target` (it is dropped): a state that gains or loses such a field still
  restores its older checkpoints.

  Args:
    manager: from `create_manager`.
    target: a state (dataclass or dict) with the same structure, shapes and
      dtypes as the saved one (a freshly initialised one), telling orbax
      what to restore into.
    step: which step; the latest complete one when None.

  Raises:
    CheckpointError: no checkpoint, or one that is corrupt or was saved by a
      different model.
  """
  step, where, saved, expected_crc = _saved_tree(manager, step)
  mismatch = structure_mismatch(saved, target)
  if mismatch:
    raise CheckpointError(
        f'{where} was saved by a different model or config: {mismatch}; use '
        'the config it was trained with (its config.json) or another --workdir')
  wanted = checksums.fields(target)
  item = {name: value for name, value in wanted.items() if name in saved}
  # Fields on disk that the target lacks hold no arrays (else `mismatch`).
  item.update({name: _zeros_like_saved(value) for name, value in saved.items()
               if name not in wanted})
  restored = _read(where, '', lambda: manager.restore(
      step, args=ocp.args.StandardRestore(item)))
  restored = {name: restored[name] if name in item else value
              for name, value in wanted.items()}
  if isinstance(expected_crc, Mapping):
    checksums.check_fingerprints(where, expected_crc, restored)
  elif expected_crc is not None and checksums.fingerprint(
      list(restored.values())) != expected_crc:
    raise CheckpointError(
        f'{where} is corrupt: its arrays do not match the checksum written '
        'with them; restore an earlier step or retrain')
  if isinstance(target, Mapping):
    return restored
  return target.replace(**restored)


def _zeros_like_saved(metadata: Any) -> Any:
  """A restore target of host zeros with the saved tree's shapes and dtypes."""
  def leaf(m):
    if hasattr(m, 'shape') and m.shape != ():
      return np.zeros(m.shape, m.dtype)
    return np.zeros((), getattr(m, 'dtype', None) or np.int64)
  return jax.tree.map(leaf, metadata)


def restore_variables(manager: ocp.CheckpointManager, variables: Any,
                      step: int | None = None) -> dict[str, Any]:
  """Restores what inference needs from a training or a released checkpoint.

  Needs no optimizer: the saved tree is read as it was written, and only
  the model's part is checked against `variables` and returned.

  Args:
    manager: from `create_manager`.
    variables: the model's ``{'params', 'batch_stats'}`` (``batch_stats``
      may be ``{}``), as arrays or as ``jax.ShapeDtypeStruct`` from
      ``jax.eval_shape(model.init, ...)``.
    step: which step; the latest when None.

  Returns:
    ``{'params', 'batch_stats', 'step'}``, the arrays in `variables`'
    dtypes (a release may store them as float16, `apps.export`).

  Raises:
    CheckpointError: no checkpoint, or one that is corrupt or was saved by a
      different model.
  """
  step, where, saved, expected_crc = _saved_tree(manager, step)
  saved_model = {'params': saved.get('params', {}),
                 'batch_stats': saved.get('batch_stats', {})}
  mismatch = structure_mismatch(saved_model, variables, check_dtypes=False)
  if mismatch:
    raise CheckpointError(
        f'{where} was saved by a different model or config: {mismatch}; use '
        'the config it was trained with (its config.json) or another --workdir')
  restored = _read(where, '', lambda: manager.restore(
      step, args=ocp.args.StandardRestore(_zeros_like_saved(saved))))
  model = {'params': restored['params'],
           'batch_stats': restored.get('batch_stats', {}),
           'step': restored['step']}
  if isinstance(expected_crc, Mapping):
    checksums.check_fingerprints(where, expected_crc, model)
  elif expected_crc is not None and 'opt_state' not in restored and (
      checksums.fingerprint(restored) != expected_crc):
    # One CRC over a release's whole (sorted) dict. A training checkpoint of
    # that time was summed in its train state's field order, which this
    # generic reader does not know: it is checked when the trainer restores
    # it whole (`restore`).
    raise CheckpointError(
        f'{where} is corrupt: its arrays do not match the checksum written '
        'with them; restore an earlier step or retrain')
  return cast_like(model, variables, int(model['step']))


def cast_like(saved: Any, variables: Any, step: int) -> dict[str, Any]:
  """``{'params', 'batch_stats', 'step'}``: `saved`'s arrays in the dtypes
  of `variables` (a release stores them as float16, computes in float32)."""
  cast = lambda x, like: np.asarray(x).astype(like.dtype)
  return {'params': jax.tree.map(cast, saved['params'], variables['params']),
          'batch_stats': jax.tree.map(cast, saved['batch_stats'],
                                      variables['batch_stats']),
          'step': step}
