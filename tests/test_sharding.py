"""Data parallelism with jax.sharding on 4 simulated CPU devices.

Each run is a fresh process, since the device count is fixed when JAX starts.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

FOUR_DEVICES = '--xla_force_host_platform_device_count=4'


def _run(data_dir, workdir, norm, devices_flag):
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + devices_flag).strip()
  result = subprocess.run(
      [sys.executable, str(REPO / 'tests' / 'sharded_run.py'), str(data_dir),
       str(workdir), norm], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


# BatchNorm's statistics across devices are the case sharding can break;
# per-example norms (group, none) have nothing of it.
@pytest.mark.parametrize('norm', ['batch'])
def test_four_devices_follow_the_single_device_loss_trajectory(data_dir, tmp_path, norm):
  one = _run(data_dir, tmp_path / 'one', norm, '')
  four = _run(data_dir, tmp_path / 'four', norm, FOUR_DEVICES)
  assert (one['devices'], four['devices']) == (1, 4)
  # Same pairs, same dropout, global BatchNorm statistics: the same numbers
  # up to the order of floating-point sums.
  np.testing.assert_allclose(four['losses'], one['losses'], rtol=2e-5)
  for source in ('mnist', 'cifar10'):
    for metric in ('psnr', 'ssim'):
      assert four['record'][source][metric] == pytest.approx(
          one['record'][source][metric], rel=1e-4)
  assert four['compiles'] == 1  # One compile for the whole run.
  assert four['batch_stats'] == (norm == 'batch')


def test_a_batch_that_does_not_divide_over_the_devices(data_dir, tmp_path):
  env = dict(os.environ, XLA_FLAGS=FOUR_DEVICES)
  result = subprocess.run(
      [sys.executable, 'launch.py', f'--config={REPO / "configs" / "quick.py"}',
       f'--workdir={tmp_path}', f'--config.data.dir={data_dir}',
       '--config.batch_size=10'], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      'error: batch_size=10 does not divide over the 4 devices; use a multiple '
      'of 4, e.g. 8')
