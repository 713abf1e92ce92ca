"""Stopping cleanly on Ctrl-C (SIGINT) and preemption (SIGTERM).

Colab, Kubernetes and Cloud TPU send SIGTERM some seconds before they stop a
machine; a user presses Ctrl-C. Either way the work the process holds in
memory should be saved, not lost. `StopSignals` turns both signals into:

* inside its `deferred` block (the train loop), a request that the loop
  honours between steps: it finishes the step in flight, saves a checkpoint
  at that step, waits for it, and raises `Interrupted`;
* anywhere else (loading, the final eval, `--mode=eval` or `separate`), an
  immediate `Interrupted`: nothing there is lost by stopping, since every
  output is written to a temporary file and renamed;
* a second signal while the first is being honoured: an immediate exit with
  status 128 + signal, as a kill would. A checkpoint being written then is
  left in orbax's temporary folder, which never counts as a checkpoint, so
  the run resumes from the last complete one.

`Interrupted` derives from KeyboardInterrupt, so a notebook or pytest stops
as on any Ctrl-C; the command line prints its one-line message and exits
with ``128 + signal``: 130 for SIGINT, 143 for SIGTERM.
"""

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
  """The run stopped on a signal; the message says what was kept.

  Attributes:
    signum: the signal that stopped it.
    exit_code: the conventional status, 128 + signum.
  """

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum
    self.exit_code = 128 + signum

  def __str__(self) -> str:
    return str(self.args[0])


def signal_name(signum: int) -> str:
  """'SIGINT', 'SIGTERM', ..."""
  return signal.Signals(signum).name


class StopSignals:
  """Handles SIGINT and SIGTERM for the duration of a ``with`` block.

  Outside the main thread Python cannot install handlers; there the block
  changes nothing and signals act as usual. Handlers in place before are
  put back on exit.

  Attributes:
    signum: the first signal received inside `deferred`, or None.
  """

  def __init__(self, what: str = 'the run'):
    """Args: what: how the immediate message names the interrupted work."""
    self.signum: int | None = None
    self._what = what
    self._deferring = False
    self._previous: dict[int, object] = {}

  def __enter__(self) -> 'StopSignals':
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  @property
  def requested(self) -> bool:
    """Whether a stop was requested inside `deferred`."""
    return self.signum is not None

  @contextlib.contextmanager
  def deferred(self) -> Iterator[None]:
    """Inside: the first signal only sets `signum`, for the caller to act on."""
    self._deferring = True
    try:
      yield
    finally:
      self._deferring = False

  def _handle(self, signum: int, frame) -> None:
    del frame
    if self.signum is not None:
      # Second signal: the user wants out now. Exit as a kill would; the save
      # in flight stays a temporary folder that never counts.
      print(f'\n{signal_name(signum)} again: stopped at once; the run resumes '
            'from its last complete checkpoint', file=sys.stderr, flush=True)
      os._exit(128 + signum)
    if self._deferring:
      self.signum = signum
      print(f'\n{signal_name(signum)}: finishing the step in flight and '
            'saving a checkpoint (again to stop at once)', file=sys.stderr,
            flush=True)
      return
    self.signum = signum
    raise Interrupted(signum, f'interrupted ({signal_name(signum)}) during '
                      f'{self._what}')
