"""Helper for test_sharding.py: a tiny run in a fresh process, whose device
count the caller sets with XLA_FLAGS=--xla_force_host_platform_device_count.

  python tests/sharded_run.py DATA_DIR WORKDIR NORM

Prints one JSON line: device count, losses, eval record, how many times the
train step was compiled, and whether the trained parameters are replicated.
"""

import json
import pathlib
import sys

import jax

# The tests' helpers, and the repository's configs/ (as pytest's pythonpath).
sys.path[:0] = [str(pathlib.Path(__file__).parent),
                str(pathlib.Path(__file__).parents[1])]
from conftest import tiny_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import checkpoints, steps, train, train_state, writers  # pylint: disable=wrong-import-position


def config(data_dir: str):
  """The run: tiny.py's, a log at every step."""
  return tiny_config(pathlib.Path(data_dir), num_train_steps=6, **{
      'eval.every_steps': 0, 'log_every_steps': 1})


def main() -> None:
  data_dir, workdir = sys.argv[1:3]
  record = train.train_and_evaluate(config(data_dir), workdir)
  losses = [r['loss'] for r in writers.read_jsonl(pathlib.Path(workdir) / 'metrics.jsonl')
            if r['kind'] == 'train']
  manager = checkpoints.create_manager(workdir, read_only=True)
  state = checkpoints.restore(manager,
                              train_state.create_train_state(config(data_dir)))
  print(json.dumps({
      'devices': jax.device_count(),
      'losses': losses,
      'record': record,
      'compiles': steps.train_step_on_pool._cache_size(),  # pylint: disable=protected-access
      'batch_stats': bool(jax.tree.leaves(state.batch_stats)),
  }))


if __name__ == '__main__':
  main()
