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


def _run_on_four_devices(data_dir, workdir):
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + FOUR_DEVICES).strip()
  result = subprocess.run(
      [sys.executable, str(REPO / 'tests' / 'sharded_run.py'), str(data_dir),
       str(workdir)], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_four_devices_follow_the_single_device_loss_trajectory(data_dir,
                                                               tmp_path):
  # The same run on this process's one device, and on four in another.
  import sharded_run  # pylint: disable=g-import-not-at-top
  from mixae_jax import train, writers  # pylint: disable=g-import-not-at-top
  record = train.train_and_evaluate(sharded_run.config(data_dir),
                                    tmp_path / 'one')
  losses = [r['loss'] for r in writers.read_jsonl(tmp_path / 'one' /
                                                  'metrics.jsonl')
            if r['kind'] == 'train']
  four = _run_on_four_devices(data_dir, tmp_path / 'four')
  assert four['devices'] == 4
  # Same pairs, same dropout, global BatchNorm statistics (the case sharding
  # can break): the same numbers up to the order of floating-point sums.
  np.testing.assert_allclose(four['losses'], losses, rtol=2e-5)
  for source in ('mnist', 'cifar10'):
    for metric in ('psnr', 'ssim'):
      assert four['record'][source][metric] == pytest.approx(
          record[source][metric], rel=1e-4)
  assert four['compiles'] == 1  # One compile for the whole run.
  assert four['batch_stats']


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
