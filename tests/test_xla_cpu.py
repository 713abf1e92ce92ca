"""The XLA:CPU setting that `import mixae_jax` applies (mixae_jax/xla_cpu.py)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from mixae_jax import xla_cpu

FLAG = f'{xla_cpu.YNN_FLAG}={xla_cpu.YNN_VALUE}'
SUPPORTED = (0, 10)


def test_appends_to_the_users_flags():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  assert xla_cpu.tuned_flags(env, SUPPORTED) == (
      f'--xla_force_host_platform_device_count=4 {FLAG}')
  assert xla_cpu.tuned_flags({}, SUPPORTED) == FLAG


@pytest.mark.parametrize('env, version', [
    ({'XLA_FLAGS': f'{xla_cpu.YNN_FLAG}='}, SUPPORTED),  # The user's own value.
    ({xla_cpu.OPT_OUT_VAR: '1'}, SUPPORTED),  # Opted out.
    ({}, (0, 9)), ({}, (0, 12)), ({}, None),  # jaxlib may not know the flag.
])
def test_left_alone(env, version):
  assert xla_cpu.tuned_flags(env, version) is None


def test_apply_changes_only_what_it_should():
  env = {'XLA_FLAGS': '--xla_dump_to=/tmp/x'}
  changed = xla_cpu.apply(env)
  supported = (xla_cpu.SUPPORTED_JAXLIB[0] <= xla_cpu._jaxlib_version()
               < xla_cpu.SUPPORTED_JAXLIB[1])
  assert changed == supported
  assert env['XLA_FLAGS'] == (f'--xla_dump_to=/tmp/x {FLAG}' if supported
                              else '--xla_dump_to=/tmp/x')
  assert not xla_cpu.apply(env)  # Idempotent.


# Compiles one convolution, one matrix product and one BatchNorm-style sum in
# a fresh process and reports which of them XLA handed to YNNPACK.
_PROBE = '''
import json, os, sys
import mixae_jax, jax, jax.numpy as jnp
conv = lambda x, w: jax.lax.conv_general_dilated(
    x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
hlo = lambda f, *a: jax.jit(f).lower(*a).compile().as_text()
print(json.dumps({
    'xla_flags': os.environ.get('XLA_FLAGS', ''),
    'conv_ynn': '__ynn' in hlo(conv, jnp.ones((8, 16, 16, 32)), jnp.ones((3, 3, 32, 32))),
    'dot_ynn': '__ynn' in hlo(jnp.dot, jnp.ones((64, 64)), jnp.ones((64, 64))),
    'sum_ynn': '__ynn' in hlo(lambda x: jnp.sum(x, (0, 1, 2)), jnp.ones((8, 16, 16, 32))),
}))
'''


def _probe(**env) -> dict:
  env = {k: v for k, v in dict(os.environ, **env).items() if v is not None}
  result = subprocess.run([sys.executable, '-c', _PROBE], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_package_takes_convolutions_off_ynnpack_and_sums_on():
  version = xla_cpu._jaxlib_version()
  if not xla_cpu.SUPPORTED_JAXLIB[0] <= version < xla_cpu.SUPPORTED_JAXLIB[1]:
    pytest.skip(f'jaxlib {version} is outside the versions the flag is set for')
  default = _probe(XLA_FLAGS=None, **{xla_cpu.OPT_OUT_VAR: '1'})
  if not default['conv_ynn']:
    pytest.skip('this jaxlib does not use YNNPACK for convolutions anyway')
  tuned = _probe(XLA_FLAGS=None, **{xla_cpu.OPT_OUT_VAR: None})
  assert tuned['xla_flags'] == FLAG
  assert not tuned['conv_ynn'] and tuned['dot_ynn'] == default['dot_ynn']
  assert tuned['sum_ynn']  # XLA's own reduction loops are ~10x slower.
  dots_only = _probe(XLA_FLAGS=f'{xla_cpu.YNN_FLAG}=individual_dot')
  assert not dots_only['sum_ynn']  # So the probe can tell.
