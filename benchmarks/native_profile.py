"""Where a train step's CPU time goes in native code: a Linux `perf` profile.

  python benchmarks/native_profile.py                     # the U-Net, ~1 min
  python benchmarks/native_profile.py --network=seed004 --seconds=10
  python benchmarks/native_profile.py --huge_pages=false  # malloc's plain pages

benchmarks/step_profile.py sums XLA's own trace, which cannot see inside the
convolutions. This one samples every thread of a child process that runs the
train step benchmarks/throughput.py times (batch ``--batch_size``, Adam, MSE)
with ``perf record`` (the ``perf`` tool of linux-tools; it must be allowed to
attach to the child: ``kernel.perf_event_paranoid`` <= 1, or root) and groups
the samples by what ran:

- Eigen's packing of convolution inputs into matrix panels (XLA:CPU computes
  every convolution as Eigen's image-patch contraction; the packing is its
  im2col);
- JIT code, which perf cannot name: oneDNN's sgemm kernels (which Eigen's
  contractions call for the matrix products) and XLA's own fused kernels;
- YNNPACK (the reductions and small dots `mixae_jax/xla_cpu.py` hands it);
- the kernel zeroing fresh pages, and the rest of the kernel;
- the rest, by library.

The child also reports its step time, the CPU cores it kept busy (user and
system) and the page faults per step, from ``getrusage``. With
``--huge_pages`` (the default) the child runs with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, as ``launch.py`` trains. The last
line is one JSON object with every group's share of the samples.
"""

import collections
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


def define_flags() -> None:
  """Defines the command line's flags.

  Only when run as a script, so that tests can import the report parser in
  one process with other benchmarks that define flags of the same names.
  """
  flags.DEFINE_enum('network', 'unet', ['unet', 'seed004'], 'Which network.')
  flags.DEFINE_integer('batch_size', 128, 'Mixtures per train step.')
  flags.DEFINE_float('seconds', 8.0, 'Length of the sampled window.')
  flags.DEFINE_integer('frequency', 999, 'Samples per second per thread.')
  flags.DEFINE_bool('huge_pages', True,
                    'Run the child with GLIBC_TUNABLES=glibc.malloc.hugetlb=1.')
  flags.DEFINE_integer('top', 12, 'Symbols to print.')


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child: compiles the step, says so, then trains for `seconds` more and
# prints what getrusage saw over that window as one JSON line.
_CHILD = r'''
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
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


def main(argv):
  del argv
  if shutil.which('perf') is None:
    raise app.UsageError('native_profile.py needs Linux perf on PATH '
                         '(Debian: apt install linux-perf)')
  env = dict(os.environ)
  if FLAGS.huge_pages:
    env.setdefault('GLIBC_TUNABLES', 'glibc.malloc.hugetlb=1')
  code = _CHILD.format(repo=REPO, network=FLAGS.network,
                       batch_size=FLAGS.batch_size,
                       seconds=FLAGS.seconds + 4.0)
  child = subprocess.Popen([sys.executable, '-c', code], env=env, text=True,
                           stdout=subprocess.PIPE)
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


if __name__ == '__main__':
  define_flags()
  app.run(main)
