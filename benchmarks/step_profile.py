"""Where a whole train step's time goes, by kind of XLA operation.

  python benchmarks/step_profile.py                    # the default U-Net, ~1 min
  python benchmarks/step_profile.py --network=seed004
  MIXAE_XLA_CPU_DEFAULTS=1 python benchmarks/step_profile.py   # XLA's defaults

It compiles the train step that benchmarks/throughput.py times (batch
``--batch_size``, Adam, MSE), runs it ``--steps`` times under the JAX profiler
and sums the duration of every compiled operation the XLA:CPU runtime
recorded, grouped by kind: the fusion's name without its number
(``transpose_copy_fusion``, ``wrapped_reduce-window``, ``ynn_fusion``, ...).
Times are summed over the runtime's threads, so the kinds add up to more than
the step's wall time; the convolution kernels run inside Eigen's thread pool,
which the trace does not break down, and appear only through the wall time.
The last line is one JSON object with the step time and every kind's ms.
"""

import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS  # --batch_size comes with benchmarks/throughput.py.
flags.DEFINE_enum('network', 'unet', ['unet', 'seed004'], 'Which network.')
flags.DEFINE_integer('steps', 5, 'Profiled steps.')
flags.DEFINE_integer('top', 15, 'Kinds of operation to print.')

# Trace lines that are the runtime's own bookkeeping, not an operation.
_NOT_AN_OP = ('ThunkExecutor', 'end: ')


def op_kind(name: str) -> str:
  """'transpose_copy_fusion.69' -> 'transpose_copy_fusion'."""
  return re.sub(r'\.\d+$', '', name)


def profile_ms_per_step(trace_file: str, steps: int) -> dict[str, float]:
  """Milliseconds per step of each kind of operation in an xplane trace."""
  data = jax.profiler.ProfileData.from_file(trace_file)
  total = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if 'Eigen' not in line.name:  # The XLA:CPU runtime's worker threads.
        continue
      for event in line.events:
        if not event.name.startswith(_NOT_AN_OP):
          total[op_kind(event.name)] += event.duration_ns
  return {k: v / 1e6 / steps for k, v in total.most_common()}


def main(argv):
  del argv
  runner = throughput.JaxTrain(FLAGS.network, FLAGS.batch_size)
  for _ in range(2):
    runner()
  runner(sync=True)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    runner()
  runner(sync=True)
  wall_ms = 1e3 * (time.perf_counter() - start) / (FLAGS.steps + 1)
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder):
      for _ in range(FLAGS.steps):
        runner()
      runner(sync=True)
    trace = glob.glob(os.path.join(folder, '**', '*.xplane.pb'), recursive=True)
    kinds = profile_ms_per_step(trace[0], FLAGS.steps + 1)
  print(f'{FLAGS.network}, batch {FLAGS.batch_size}: {wall_ms:.0f} ms per train '
        f'step (wall, unprofiled); XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  print(f'operations recorded: {sum(kinds.values()):.0f} ms per step, summed '
        'over threads; by kind:')
  for kind, ms in list(kinds.items())[:FLAGS.top]:
    print(f'  {ms:8.1f} ms  {kind}')
  print(json.dumps({'network': FLAGS.network, 'wall_ms': wall_ms,
                    'op_ms': kinds}))


if __name__ == '__main__':
  app.run(main)
