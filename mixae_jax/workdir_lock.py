"""One training run per workdir at a time, in a local folder or a bucket.

A second training started into a workdir that a live run holds (a job
resubmitted while the first still runs, the same command typed in two
terminals) would write over the first's checkpoints and metrics. The run
holds ``<workdir>/.train.lock`` while it trains; a second run finds it held
and stops, naming the live run, before it touches anything. With several
processes, process 0 alone holds it, for all.

- A local folder: an exclusive ``flock``. The kernel drops it when its
  process ends, however it ends: a run killed with SIGKILL leaves the file
  but not the lock, so the same command then resumes.
- A bucket has no locks; its objects can be created on the condition that
  none exists. The run creates the lock object so, names itself in it and
  renews it every `RENEW_SECONDS`; it deletes it when it ends. A lock left
  by a killed run is taken over when its process is gone (same host) or
  when it has not been renewed for `STALE_SECONDS` (another host).
"""

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket
import threading
import time
from typing import IO, Any, Iterator

from etils import epath

from mixae_jax import distributed
from mixae_jax import paths
from mixae_jax.errors import CheckpointError

LOCK_FILE = '.train.lock'
RENEW_SECONDS = 60
STALE_SECONDS = 5 * RENEW_SECONDS


@contextlib.contextmanager
def hold(workdir: str | os.PathLike[str]) -> Iterator[None]:
  """Holds `workdir`'s training lock for the duration of the block.

  Every process of a run calls it; process 0 takes the lock, and all of
  them stop if it is held elsewhere.

  Raises:
    CheckpointError: another live run holds the workdir.
  """
  lock = None
  holder = None
  if distributed.is_primary():
    lock = (_BucketLock if paths.is_remote(workdir) else _FileLock)(
        epath.Path(workdir) / LOCK_FILE)
    holder = lock.acquire()
  if distributed.any_process(holder is not None):
    raise CheckpointError(
        f'--workdir {workdir} is in use by a training run still going '
        f'({holder or "found by process 0"}); wait for it to finish or stop '
        'it, or choose another --workdir (nothing in it was changed)')
  try:
    yield
  finally:
    if lock is not None:
      lock.release()


def _who() -> dict[str, Any]:
  return {'pid': os.getpid(), 'host': socket.gethostname(),
          'started': datetime.datetime.now().astimezone().isoformat(
              timespec='seconds')}


def _describe(who: dict[str, Any]) -> str:
  return f'pid {who["pid"]} on {who["host"]}, started {who["started"]}'


class _FileLock:
  """An exclusive ``flock`` on a local file."""

  def __init__(self, path: epath.Path):
    self._path = pathlib.Path(path)
    self._file: IO[str] | None = None

  def acquire(self) -> str | None:
    """None once held; else a description of the run that holds it."""
    file = open(self._path, 'a+', encoding='utf-8')  # pylint: disable=consider-using-with
    try:
      fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      file.seek(0)
      holder = file.read().strip() or 'another process'
      file.close()
      return holder
    file.seek(0)
    file.truncate()
    file.write(_describe(_who()))
    file.flush()
    self._file = file
    return None

  def release(self) -> None:
    # The file stays: removing it would let a third run lock a new file
    # while a second one still holds the old.
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()


class _BucketLock:
  """A lock object created only where none exists, renewed while held."""

  def __init__(self, path: epath.Path):
    import fsspec  # pylint: disable=g-import-not-at-top  # With a bucket's client.
    self._fs, self._key = fsspec.core.url_to_fs(os.fspath(path))
    self._who = _who()
    self._stop = threading.Event()
    self._renewer: threading.Thread | None = None

  def _record(self) -> bytes:
    return json.dumps({**self._who, 'renewed': time.time()}).encode()

  def _read(self) -> dict[str, Any] | None:
    try:
      return json.loads(self._fs.cat_file(self._key))
    except FileNotFoundError:
      return None
    except ValueError:  # Not ours, or torn: treat as held by someone.
      return {'pid': '?', 'host': '?', 'started': '?', 'renewed': time.time()}

  def acquire(self) -> str | None:
    """None once held; else a description of the run that holds it."""
    for _ in range(2):  # The second try follows taking over a stale lock.
      try:
        self._fs.pipe_file(self._key, self._record(), mode='create')
      except FileExistsError:
        found = self._read()
        if found is not None and not _stale(found):
          return _describe(found)
        self._fs.invalidate_cache()
        if found is not None:
          self._fs.rm_file(self._key)
        continue
      self._renewer = threading.Thread(target=self._renew, daemon=True,
                                       name='mixae-workdir-lock')
      self._renewer.start()
      return None
    return 'another run that took it at the same moment'

  def _renew(self) -> None:
    while not self._stop.wait(RENEW_SECONDS):
      try:
        self._fs.pipe_file(self._key, self._record())
      except Exception:  # pylint: disable=broad-except
        pass  # A lost connection: the next renewal tries again.

  def release(self) -> None:
    self._stop.set()
    if self._renewer is not None:
      self._renewer.join()
    try:
      found = self._read()
      if found and found.get('pid') == self._who['pid'] and \
          found.get('host') == self._who['host']:
        self._fs.rm_file(self._key)
    except Exception:  # pylint: disable=broad-except
      # The store is gone (the error being reported already says so): the
      # lock stays behind, and is taken over once this process has ended.
      pass


def _stale(found: dict[str, Any]) -> bool:
  """Whether the run that wrote a lock object is gone."""
  if found.get('host') == socket.gethostname() and isinstance(
      found.get('pid'), int):
    try:
      os.kill(found['pid'], 0)
    except ProcessLookupError:
      return True
    except PermissionError:  # Alive, another user's.
      return False
    return False
  return time.time() - float(found.get('renewed', 0)) > STALE_SECONDS
