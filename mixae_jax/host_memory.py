"""Transparent huge pages for the host memory of a training run (Linux, glibc).

A CPU train step writes every activation and gradient into buffers that
glibc maps afresh, 4 KiB page by page, at each step; a 128x32x32x32 float32
array alone is 4,096 page faults. With glibc's ``glibc.malloc.hugetlb=1``
tunable, malloc asks the kernel for 2 MiB transparent huge pages instead
(where the kernel's ``transparent_hugepage`` mode is ``madvise`` or
``always``). On the project's 2-core machine that trains seed004 17% and the
U-Net 14% faster, and PyTorch 5% and 13% (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1
python benchmarks/throughput.py`` against the plain command; docs/speed.md).

glibc reads its tunables once, when a process starts, so the command line
(`cli.launch`) restarts itself with the tunable set before doing any work.
It does not when ``GLIBC_TUNABLES`` is already set (the user's choice wins,
and the restarted process finds it set), when ``MIXAE_XLA_CPU_DEFAULTS=1``
asks for the platform's defaults, or where it cannot help: not Linux, not
glibc 2.35 or newer, or huge pages turned off.
"""

import os
import platform
import sys
from typing import Mapping

TUNABLE = 'glibc.malloc.hugetlb=1'
OPT_OUT_VAR = 'MIXAE_XLA_CPU_DEFAULTS'
THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled'


def _glibc_version() -> tuple[int, ...] | None:
  name, version = platform.libc_ver()
  if name != 'glibc' or not version:
    return None
  try:
    return tuple(int(p) for p in version.split('.')[:2])
  except ValueError:
    return None


def _thp_mode(path: str = THP_MODE_FILE) -> str | None:
  """The kernel's selected transparent-huge-page mode ('madvise', ...)."""
  try:
    with open(path, encoding='ascii') as f:
      text = f.read()
  except OSError:
    return None
  start, stop = text.find('['), text.find(']')
  return text[start + 1:stop] if 0 <= start < stop else None


def should_restart(environ: Mapping[str, str], system: str,
                   glibc: tuple[int, ...] | None, thp_mode: str | None) -> bool:
  """Whether a fresh process with the tunable set would allocate faster."""
  return (system == 'Linux' and 'GLIBC_TUNABLES' not in environ
          and environ.get(OPT_OUT_VAR) != '1'
          and glibc is not None and glibc >= (2, 35)
          and thp_mode in ('madvise', 'always'))


def restart_with_huge_pages() -> None:
  """Replaces this process by the same command with the tunable set.

  Returns (doing nothing) where `should_restart` says no. Call it first
  thing in a command-line entry point, never from a library or a notebook.
  """
  if not should_restart(os.environ, platform.system(), _glibc_version(),
                        _thp_mode()):
    return
  env = dict(os.environ, GLIBC_TUNABLES=TUNABLE)
  # sys.orig_argv keeps `-m module` and interpreter options as they were typed.
  argv = [sys.executable] + list(getattr(sys, 'orig_argv', [''] + sys.argv)[1:])
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, argv, env)
