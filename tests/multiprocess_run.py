"""Helper for test_multiprocess.py: one of several processes of a tiny run,
which can kill itself at a chosen point.

  python tests/multiprocess_run.py DATA_DIR WORKDIR PORT NUM_PROCESSES \
      PROCESS_ID [[SIGNAL@]EVENT:STEP ...]

The points are kill_run.py's. The run is the one test_multiprocess.py
launches through launch.py: `CONFIG_OVERRIDES` on configs/tiny.py.
"""

import pathlib
import sys

sys.path[:0] = [str(pathlib.Path(__file__).parent),
                str(pathlib.Path(__file__).parents[1])]
# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging
from conftest import tiny_config
from kill_run import signal_at
from mixae_jax import distributed, train

# The run of every multi-process test: a log and a checkpoint every 2 steps.
CONFIG_OVERRIDES = {'num_train_steps': 6, 'log_every_steps': 1,
                    'checkpoint.every_steps': 2, 'eval.every_steps': 0}


def main() -> None:
  data_dir, workdir, port, num_processes, process_id, *points = sys.argv[1:]
  logging.set_verbosity(logging.INFO)  # The test reads where it resumed.
  distributed.initialize(f'127.0.0.1:{port}', int(num_processes),
                         int(process_id), timeout_s=60)
  config = tiny_config(pathlib.Path(data_dir), **CONFIG_OVERRIDES)
  train.train_and_evaluate(config, workdir,
                           callbacks=[signal_at(points, workdir)])


if __name__ == '__main__':
  main()
