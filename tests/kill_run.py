"""Helper for test_reliability.py: a tiny training run in a fresh process,
killed with SIGKILL at a chosen point through the trainer's callbacks.

  python tests/kill_run.py DATA_DIR WORKDIR [step:N | save:N]

``step:N`` kills right after step N is dispatched (its computation still
running: a mid-step kill); ``save:N`` right after the checkpoint of step N
has started to be written. Without a point the run finishes (or resumes).
"""

import os
import pathlib
import signal
import sys

# The tests' helpers, and the repository's configs/ (as pytest's pythonpath).
sys.path[:0] = [str(pathlib.Path(__file__).parent),
                str(pathlib.Path(__file__).parents[1])]
from conftest import tiny_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import train  # pylint: disable=wrong-import-position


def config(data_dir: str):
  """The run every kill test makes: 8 steps, a checkpoint every 2."""
  return tiny_config(pathlib.Path(data_dir), num_train_steps=8,
                     log_every_steps=1, **{'checkpoint.every_steps': 2,
                                           'eval.every_steps': 0,
                                           'eval.num_pairs': 24,
                                           'eval.batch_size': 8})


def kill_at(point: str):
  """A trainer callback that SIGKILLs this process at `point` ('save:6')."""
  def callback(event: str, step: int) -> None:
    if f'{event}:{step}' == point:
      os.kill(os.getpid(), signal.SIGKILL)
  return callback


def main() -> None:
  data_dir, workdir, *point = sys.argv[1:]
  logging.set_verbosity(logging.INFO)  # The test reads where it resumed.
  callbacks = [kill_at(point[0])] if point else []
  train.train_and_evaluate(config(data_dir), workdir, callbacks=callbacks)


if __name__ == '__main__':
  main()
