"""A long run says so at its start: how long it will take, and what is shorter.

A config sized for a GPU can take most of a day on a laptop's CPU, and
without a terminal nothing shows it. So the trainer times a few steps past
the first (which compiles) and, when the rest of the run would take over
`LONG_S`, logs one line: the estimate, and the config sized for this device.
"""

import time
from typing import Any

from absl import logging
import jax

# Longer than this gets the note: 90 minutes, the longest a CPU recipe here
# is sized for (configs/mnist_mnist.py, cifar_cifar.py).
LONG_S = 5400
TIMED_STEPS = 10  # Steps timed after the first.
# The config sized for a device, by platform.
SIZED_FOR = {'cpu': 'configs/quick.py'}


def _duration(seconds: float) -> str:
  if seconds >= 2 * 86400:
    return f'{seconds / 86400:.1f} days'
  if seconds >= 2 * 3600:
    return f'{seconds / 3600:.1f} h'
  return f'{seconds / 60:.0f} min'


def long_run_note(steps_left: int, seconds_per_step: float,
                  platform: str) -> str | None:
  """The line a long run logs at its start, or None for a short one.

  Args:
    steps_left: steps still to train.
    seconds_per_step: the measured time of one step.
    platform: the backend's platform ('cpu', 'gpu', 'tpu').
  """
  seconds = steps_left * seconds_per_step
  if seconds <= LONG_S:
    return None
  note = (f'this run has {steps_left:,} steps to go: about '
          f'{_duration(seconds)} on this {platform.upper()} '
          f'({seconds_per_step:.2g} s a step)')
  if platform in SIZED_FOR:
    note += (f'; --config={SIZED_FOR[platform]} is the one sized for a '
             f'{platform.upper()}')
  return note


class StepTimer:
  """Times `TIMED_STEPS` steps after a run's first and logs `long_run_note`.

  It waits for the device twice, at the two ends of the timed steps; the
  other steps run on without waiting.
  """

  def __init__(self, first_step: int, total_steps: int):
    """`first_step`: the step the run starts at (after a resume, not 0)."""
    self._start = first_step + 1  # After this step's outputs are ready.
    self._end = self._start + TIMED_STEPS
    self._total = total_steps
    self._started_at = 0.0

  def after_step(self, step: int, outputs: Any) -> None:
    """Called after each step with what it returned."""
    if step not in (self._start, self._end):
      return
    jax.block_until_ready(outputs)
    if step == self._start:
      self._started_at = time.perf_counter()
      return
    seconds_per_step = (time.perf_counter() - self._started_at) / TIMED_STEPS
    note = long_run_note(self._total - step, seconds_per_step,
                         jax.default_backend())
    if note:
      logging.warning(note)
