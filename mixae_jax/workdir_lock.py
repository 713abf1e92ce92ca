"""One training run per workdir at a time.

A second training started into a workdir that a live run holds (a job
resubmitted while the first still runs, the same command typed in two
terminals) would write over the first's checkpoints and metrics. The run
holds an exclusive ``flock`` on ``<workdir>/.train.lock`` while it trains;
a second run finds it held and stops, naming the live run, before it
touches anything.

The kernel drops the lock when its process ends, however it ends: a run
killed with SIGKILL leaves the file but not the lock, so the same command
then resumes. With several processes, process 0 alone holds it, for all.
"""

import contextlib
import datetime
import fcntl
import os
import pathlib
import socket
from typing import IO, Iterator

from mixae_jax import distributed
from mixae_jax.errors import CheckpointError

LOCK_FILE = '.train.lock'


@contextlib.contextmanager
def hold(workdir: str | pathlib.Path) -> Iterator[None]:
  """Holds `workdir`'s training lock for the duration of the block.

  Every process of a run calls it; process 0 takes the lock, and all of
  them stop if it is held elsewhere.

  Raises:
    CheckpointError: another live run holds the workdir.
  """
  workdir = pathlib.Path(workdir)
  file = _acquire(workdir / LOCK_FILE) if distributed.is_primary() else None
  holder = file if isinstance(file, str) else None
  if distributed.any_process(holder is not None):
    raise CheckpointError(
        f'--workdir {workdir} is in use by a training run still going '
        f'({holder or "found by process 0"}); wait for it to finish or stop '
        'it, or choose another --workdir (nothing in it was changed)')
  try:
    yield
  finally:
    if file is not None:
      # The file stays: removing it would let a third run lock a new file
      # while a second one still holds the old.
      fcntl.flock(file, fcntl.LOCK_UN)
      file.close()


def _acquire(path: pathlib.Path) -> IO[str] | str:
  """The locked file, or a description of the run that holds it."""
  file = open(path, 'a+', encoding='utf-8')  # pylint: disable=consider-using-with
  try:
    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    file.seek(0)
    holder = file.read().strip() or 'another process'
    file.close()
    return holder
  started = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
  file.seek(0)
  file.truncate()
  file.write(f'pid {os.getpid()} on {socket.gethostname()}, started {started}')
  file.flush()
  return file
