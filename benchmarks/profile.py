"""Where a train step's time goes: XLA's own trace, or native code under perf.

  python -m benchmarks.profile                          # the U-Net, XLA's trace, ~1 min
  python -m benchmarks.profile --kind=native            # Linux perf over every thread
  python -m benchmarks.profile --network=seed004 --kind=native --seconds=10

Both profile the train step that benchmarks/throughput.py times (batch
``--batch_size``, Adam, MSE), with the platform tuning applied as
``launch.py`` applies it (``MIXAE_PLATFORM_TUNING=0`` for XLA's defaults).

``--kind=xla`` runs ``--steps`` steps under the JAX profiler and sums the
duration of every compiled operation the XLA:CPU runtime recorded, grouped by
kind (the fusion's name without its number: ``transpose_copy_fusion``,
``ynn_fusion``, ...). Times are summed over threads; the convolutions run
inside Eigen's thread pool, which the trace does not break down.

``--kind=native`` samples every thread of a child process running the step
with ``perf record`` (linux-perf; ``kernel.perf_event_paranoid`` <= 1, or
root) and groups the samples by what ran: Eigen's packing of convolution
inputs (its im2col), JIT code (oneDNN's sgemm kernels and XLA's fusions),
YNNPACK, the kernel zeroing fresh pages, and the rest by library; with the
step time, the cores kept busy and the page faults per step.

The last line is one JSON object with every figure.
"""

import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_flags() -> None:
  """Defines the command line's flags.

  Only when run as a script, so that tests can import the report parser in
  one process with other benchmarks that define flags of the same names.
  """
  flags.DEFINE_enum('kind', 'xla', ['xla', 'native'],
                    "xla: XLA's trace by kind of operation; native: perf.")
  flags.DEFINE_enum('network', 'unet', ['unet', 'seed004'], 'Which network.')
  flags.DEFINE_integer('batch_size', 128, 'Mixtures per train step.')
  flags.DEFINE_integer('steps', 5, '--kind=xla: profiled steps.')
  flags.DEFINE_float('seconds', 8.0, '--kind=native: the sampled window.')
  flags.DEFINE_integer('frequency', 999,
                       '--kind=native: samples per second per thread.')
  flags.DEFINE_integer('top', 12, 'Rows to print.')


# -- XLA's trace ----------------------------------------------------------------

# Trace lines that are the runtime's own bookkeeping, not an operation.
_NOT_AN_OP = ('ThunkExecutor', 'end: ')


def op_kind(name: str) -> str:
  """'transpose_copy_fusion.69' -> 'transpose_copy_fusion'."""
  return re.sub(r'\.\d+$', '', name)


def xla_profile() -> None:
  """--kind=xla: milliseconds per step of each kind of XLA operation."""
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import throughput  # pylint: disable=g-import-not-at-top
  runner = throughput.JaxTrain(FLAGS.network, FLAGS.batch_size)
  for _ in range(2):
    runner()
  runner(sync=True)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    runner()
  runner(sync=True)
  wall_ms = 1e3 * (time.perf_counter() - start) / (FLAGS.steps + 1)
  total = collections.Counter()
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder):
      for _ in range(FLAGS.steps):
        runner()
      runner(sync=True)
    trace = glob.glob(os.path.join(folder, '**', '*.xplane.pb'), recursive=True)
    data = jax.profiler.ProfileData.from_file(trace[0])
    for plane in data.planes:
      for line in plane.lines:
        if 'Eigen' not in line.name:  # The XLA:CPU runtime's worker threads.
          continue
        for event in line.events:
          if not event.name.startswith(_NOT_AN_OP):
            total[op_kind(event.name)] += event.duration_ns
  kinds = {k: v / 1e6 / (FLAGS.steps + 1) for k, v in total.most_common()}
  print(f'{FLAGS.network}, batch {FLAGS.batch_size}: {wall_ms:.0f} ms per train '
        f'step (wall, unprofiled); XLA_FLAGS={os.environ.get("XLA_FLAGS", "")!r}')
  print(f'operations recorded: {sum(kinds.values()):.0f} ms per step, summed '
        'over threads; by kind:')
  for kind, ms in list(kinds.items())[:FLAGS.top]:
    print(f'  {ms:8.1f} ms  {kind}')
  print(json.dumps({'network': FLAGS.network, 'wall_ms': wall_ms,
                    'op_ms': kinds}))


# -- Native code under perf ---------------------------------------------------

# The child: compiles the step, says so, then trains for `seconds` more and
# prints what getrusage saw over that window as one JSON line.
_CHILD = r'''
import json, os, resource, time
from benchmarks import throughput
runner = throughput.JaxTrain({network!r}, {batch_size})
for _ in range(2):
  runner()
runner(sync=True)
print('READY', flush=True)
r0, t0, start, steps = resource.getrusage(resource.RUSAGE_SELF), os.times(), time.perf_counter(), 0
while time.perf_counter() - start < {seconds}:
  runner(); steps += 1
runner(sync=True); steps += 1
r1, t1, wall = resource.getrusage(resource.RUSAGE_SELF), os.times(), time.perf_counter() - start
print(json.dumps({{'step_ms': 1e3 * wall / steps,
                  'img_s': {batch_size} * steps / wall,
                  'user_cores': (t1.user - t0.user) / wall,
                  'system_cores': (t1.system - t0.system) / wall,
                  'minor_faults_per_step': (r1.ru_minflt - r0.ru_minflt) / steps}}), flush=True)
'''

# (group, test on (shared object, symbol)), first match wins.
GROUPS = (
    ('Eigen: packing convolution inputs (im2col)',
     lambda dso, sym: 'gemm_pack' in sym and 'ImagePatch' in sym),
    ('Eigen: packing other matrix panels', lambda dso, sym: 'gemm_pack' in sym),
    ('JIT: oneDNN sgemm kernels and XLA fusions', lambda dso, sym: dso.startswith('[JIT]')),
    ('oneDNN (named)', lambda dso, sym: 'dnnl' in sym),
    ('YNNPACK', lambda dso, sym: 'ynn' in sym or 'slinky' in sym),
    ('Eigen: thread pool', lambda dso, sym: 'ThreadPool' in sym or 'RunQueue' in sym
     or 'EventCount' in sym),
    ('kernel: zeroing fresh pages', lambda dso, sym: dso == '[kernel.kallsyms]'
     and ('clear_page' in sym or 'zero_user' in sym)),
    ('kernel: other', lambda dso, sym: dso == '[kernel.kallsyms]'),
    ('libc (memcpy, malloc, ...)', lambda dso, sym: dso.startswith('libc')),
    ('jaxlib, other', lambda dso, sym: 'libjax' in dso or 'jaxlib' in dso),
)

# One sample line of `perf report --sort=dso,sym --stdio`:
# "    16.17%  libjax_common.so  [.] Eigen::internal::gemm_pack..."
_LINE = re.compile(r'^\s*([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[[.k]\]\s+(.*)$')


def group_of(dso: str, sym: str) -> str:
  for name, matches in GROUPS:
    if matches(dso, sym):
      return name
  return f'other: {dso}'


def parse_report(text: str) -> list[tuple[float, str, str]]:
  """(percent, shared object, symbol) of each line of a perf report."""
  rows = []
  for line in text.splitlines():
    m = _LINE.match(line)
    if m:
      rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
  return rows


def native_profile() -> None:
  """--kind=native: perf samples of every thread, grouped by what ran."""
  if shutil.which('perf') is None:
    raise app.UsageError('--kind=native needs Linux perf on PATH '
                         '(Debian: apt install linux-perf)')
  env = dict(os.environ)  # With the platform tuning applied, as launch.py.
  code = _CHILD.format(network=FLAGS.network, batch_size=FLAGS.batch_size,
                       seconds=FLAGS.seconds + 4.0)
  child = subprocess.Popen([sys.executable, '-c', code], env=env, text=True,
                           stdout=subprocess.PIPE, cwd=REPO)
  with tempfile.TemporaryDirectory() as folder:
    data = os.path.join(folder, 'perf.data')
    try:
      while child.stdout.readline().strip() != 'READY':
        if child.poll() is not None:
          raise RuntimeError('the train-step process ended before it was ready')
      time.sleep(1.0)  # Past the first steps' warm-up.
      subprocess.run(['perf', 'record', '-q', '-F', str(FLAGS.frequency),
                      '-o', data, '-p', str(child.pid), '--', 'sleep',
                      str(FLAGS.seconds)], check=True,
                     stdout=subprocess.DEVNULL)
      usage = json.loads(child.stdout.readline())
    finally:
      child.wait()
    report = subprocess.run(
        ['perf', 'report', '-i', data, '--sort=dso,sym', '--stdio'],
        check=True, capture_output=True, text=True).stdout
  rows = parse_report(report)
  groups = collections.Counter()
  for percent, dso, sym in rows:
    groups[group_of(dso, sym)] += percent
  print(f'{FLAGS.network}, batch {FLAGS.batch_size}, '
        f'GLIBC_TUNABLES={env.get("GLIBC_TUNABLES", "")!r}: '
        f'{usage["step_ms"]:.0f} ms per step ({usage["img_s"]:.1f} img/s), '
        f'{usage["user_cores"]:.2f} cores busy in user code, '
        f'{usage["system_cores"]:.2f} in the kernel, '
        f'{usage["minor_faults_per_step"]:.0f} page faults per step')
  print('share of CPU samples:')
  for name, percent in groups.most_common():
    print(f'  {percent:5.1f}%  {name}')
  print('top symbols:')
  for percent, dso, sym in sorted(rows, reverse=True)[:FLAGS.top]:
    print(f'  {percent:5.1f}%  {dso}  {sym[:90]}')
  print(json.dumps({'network': FLAGS.network, **usage,
                    'groups': dict(groups.most_common())}))


def main(argv):
  del argv
  xla_profile() if FLAGS.kind == 'xla' else native_profile()  # pylint: disable=expression-not-assigned


if __name__ == '__main__':
  from mixae_jax import tuning  # pylint: disable=g-import-not-at-top
  tuning.apply_process_tuning()  # As launch.py: before JAX starts.
  define_flags()
  app.run(main)
