"""Helper for test_multiprocess.py: ``launch.py``, in a process that reaches
its checks some seconds after it joined the others.

  python tests/late_process.py DELAY_S [launch.py's flags ...]

On a busy machine one process can lag the others by seconds; this makes the
lag certain, so that a test sees what a user on such a machine would.
"""

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
# pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import distributed
from mixae_jax.apps import cli


def main() -> None:
  delay_s = float(sys.argv.pop(1))
  join = distributed.initialize

  def join_then_lag(*args, **kwargs) -> None:
    join(*args, **kwargs)
    time.sleep(delay_s)

  distributed.initialize = join_then_lag
  sys.argv[0] = 'launch.py'
  cli.launch()


if __name__ == '__main__':
  main()
