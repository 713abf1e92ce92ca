"""Test-only fault injection: SIGKILL this process at a chosen point.

The kill/resume tests set ``MIXAE_KILL_AT`` in a training subprocess:

  * ``step:N``: right after step N is dispatched (its computation still
    running: a mid-step kill);
  * ``save:N``: right after the checkpoint save of step N has started
    (saves are asynchronous, so the files are still being written).

Unset (always, outside tests), `maybe_kill` does nothing.
"""

import os
import signal

ENV_VAR = 'MIXAE_KILL_AT'


def maybe_kill(point: str, step: int) -> None:
  """Kills the process with SIGKILL if ``MIXAE_KILL_AT == f'{point}:{step}'``."""
  if os.environ.get(ENV_VAR) == f'{point}:{step}':
    os.kill(os.getpid(), signal.SIGKILL)
