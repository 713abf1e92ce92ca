"""`host_memory`: when the command line restarts itself with huge pages."""

import os
import subprocess
import sys

import pytest

from mixae_jax import host_memory

LINUX = dict(system='Linux', glibc=(2, 36), thp_mode='madvise')


def test_restarts_on_linux_with_a_recent_glibc_and_huge_pages_on():
  assert host_memory.should_restart({}, **LINUX)
  assert host_memory.should_restart({}, **dict(LINUX, thp_mode='always'))


@pytest.mark.parametrize('environ,changes', [
    ({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=1'}, {}),  # the user's own
    ({'GLIBC_TUNABLES': host_memory.TUNABLE}, {}),        # already restarted
    ({'MIXAE_XLA_CPU_DEFAULTS': '1'}, {}),                 # opted out
    ({}, {'system': 'Darwin'}),
    ({}, {'glibc': None}),                                 # musl, or unknown
    ({}, {'glibc': (2, 31)}),                              # no such tunable
    ({}, {'thp_mode': 'never'}),
    ({}, {'thp_mode': None}),                              # no sysfs file
])
def test_does_not_restart(environ, changes):
  assert not host_memory.should_restart(environ, **dict(LINUX, **changes))


def test_reads_the_selected_huge_page_mode(tmp_path):
  path = tmp_path / 'enabled'
  path.write_text('always [madvise] never\n')
  assert host_memory._thp_mode(str(path)) == 'madvise'
  assert host_memory._thp_mode(str(tmp_path / 'missing')) is None


def test_a_process_restarts_itself_once_with_the_tunable():
  env = {k: v for k, v in os.environ.items()
         if k not in ('GLIBC_TUNABLES', host_memory.OPT_OUT_VAR)}
  if not host_memory.should_restart(env, host_memory.platform.system(),
                                    host_memory._glibc_version(),
                                    host_memory._thp_mode()):
    pytest.skip('this machine would not restart (not Linux with glibc >= 2.35 '
                'and transparent huge pages on)')
  code = ('import os, sys; print("start", flush=True); '
          'from mixae_jax import host_memory; '
          'host_memory.restart_with_huge_pages(); '
          'print(os.environ.get("GLIBC_TUNABLES"), sys.argv[1:])')
  out = subprocess.run([sys.executable, '-c', code, 'arg'], env=env,
                       capture_output=True, text=True, check=True).stdout
  # Two starts, one restart: the second process finds the tunable set.
  assert out.split('\n')[:3] == ['start', 'start',
                                 f"{host_memory.TUNABLE} ['arg']"]
