"""Orbax checkpointing of the train state, with errors a user can act on.

Checkpoints live in ``<workdir>/checkpoints/<step>``. Orbax writes each save to
a temporary folder and renames it when complete, so a run killed mid-save
leaves no half checkpoint that `latest_step` would return.
"""

import pathlib
from typing import Any

import orbax.checkpoint as ocp

from mixae_jax.errors import CheckpointError

CHECKPOINT_DIR = 'checkpoints'


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(workdir).absolute() / CHECKPOINT_DIR


def create_manager(workdir: str | pathlib.Path, *, max_to_keep: int = 3,
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
        f'no checkpoints in {pathlib.Path(workdir)}: {directory} does not '
        'exist; train first (--mode=train) or point --workdir at a run folder')
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else max_to_keep,
      save_interval_steps=0 if read_only else 1,
      create=not read_only, read_only=read_only,
      # Leftovers of a save that was killed are removed, never restored.
      cleanup_tmp_directories=not read_only)
  try:
    return ocp.CheckpointManager(directory, options=options)
  except (OSError, ValueError) as e:
    raise CheckpointError(f'cannot open checkpoints in {directory}: {e}') from None


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Saves `state` at `step` (asynchronously; `manager.wait_until_finished`)."""
  try:
    manager.save(step, args=ocp.args.StandardSave(state), force=True)
  except OSError as e:
    raise CheckpointError(
        f'could not save the checkpoint for step {step} in {manager.directory}: '
        f'{e.strerror or e}; free disk space or make the workdir writable '
        '(earlier checkpoints are untouched)') from None


def restore(manager: ocp.CheckpointManager, target: Any,
            step: int | None = None) -> Any:
  """Restores the checkpoint at `step` (default: latest) into `target`'s shape.

  Args:
    manager: from `create_manager`.
    target: a state with the same structure, shapes and dtypes as the saved
      one (a freshly initialised one), telling orbax what to restore into.
    step: which step; the latest complete one when None.

  Raises:
    CheckpointError: no checkpoint, or one that is corrupt or was saved by a
      different model.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(
        f'no checkpoint found in {manager.directory}; train first '
        '(--mode=train) or point --workdir at a run folder')
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(target))
  except Exception as e:  # pylint: disable=broad-except
    # Orbax raises many types (ValueError, KeyError, tensorstore errors...);
    # all mean the same to the user: this checkpoint does not fit.
    detail = ' '.join(str(e).split())[:300]
    raise CheckpointError(
        f'checkpoint {manager.directory}/{step} cannot be restored into the '
        f'configured model (corrupt, or saved by a different model/config): '
        f'{detail}') from None
