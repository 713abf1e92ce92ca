"""Helper for test_reliability.py: a tiny training run in a fresh process,
stopped by a real signal at chosen points through the trainer's callbacks.

  python tests/kill_run.py DATA_DIR WORKDIR [[SIGNAL@]EVENT:STEP ...]

``step:N`` signals right after step N is dispatched (its computation still
running: mid-step); ``save:N`` right after the checkpoint of step N has
started to be written; ``eval:N`` just before the periodic eval after step
N. SIGNAL is KILL (the default), INT or TERM; each point fires once.
``PAUSE@EVENT:STEP`` instead holds the run there, with its workdir locked:
it writes ``WORKDIR.paused`` and waits until ``WORKDIR.go`` exists (or
``$KILL_RUN_MARKER.paused`` and ``.go``, for a workdir in a bucket). Without
a point the run finishes (or resumes). An interrupted run exits as launch.py
does: its one line on stderr, status 128 + signal (a user's mistake: its
``error:`` line, status 2).
"""

import os
import pathlib
import signal
import sys
import time

# The tests' helpers, and the repository's configs/ (as pytest's pythonpath).
sys.path[:0] = [str(pathlib.Path(__file__).parent),
                str(pathlib.Path(__file__).parents[1])]
from conftest import tiny_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import interrupts, train  # pylint: disable=wrong-import-position
from mixae_jax.errors import MixaeError  # pylint: disable=wrong-import-position


def config(data_dir: str):
  """The run every kill test makes: 8 steps, a checkpoint and a log every 2,
  an eval every 4."""
  return tiny_config(pathlib.Path(data_dir), num_train_steps=8,
                     log_every_steps=2, **{'checkpoint.every_steps': 2,
                                           'eval.every_steps': 4,
                                           'eval.periodic_num_pairs': 8,
                                           'eval.num_pairs': 24,
                                           'eval.batch_size': 8})


def signal_at(points: list[str], workdir: str):
  """A trainer callback that sends each 'SIG@event:step' point's signal."""
  marker = os.environ.get('KILL_RUN_MARKER', workdir)
  targets = {}
  for point in points:
    name, _, where = point.rpartition('@')
    targets.setdefault(where, []).append(
        name if name == 'PAUSE' else getattr(signal, f'SIG{name or "KILL"}'))

  def callback(event: str, step: int) -> None:
    for signum in targets.pop(f'{event}:{step}', []):
      if signum == 'PAUSE':
        pathlib.Path(f'{marker}.paused').touch()
        deadline = time.monotonic() + 120
        while not pathlib.Path(f'{marker}.go').exists():
          if time.monotonic() > deadline:
            sys.exit('kill_run.py: never told to go on')
          time.sleep(0.05)
      else:
        os.kill(os.getpid(), signum)
  return callback


def main() -> None:
  data_dir, workdir, *points = sys.argv[1:]
  logging.set_verbosity(logging.INFO)  # The test reads where it resumed.
  try:
    train.train_and_evaluate(config(data_dir), workdir,
                             callbacks=[signal_at(points, workdir)])
  except interrupts.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(e.exit_code)
  except MixaeError as e:  # As launch.py ends: one line, status 2, at once.
    print(f'error: {e}', file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)


if __name__ == '__main__':
  main()
