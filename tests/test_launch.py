"""launch.py end to end, as a user runs it: train, eval, and user errors."""

import json
import os
import subprocess
import sys

from conftest import REPO


def _launch(*args, timeout=600):
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _tiny_flags(data_dir):
  return [f'--config={REPO / "configs" / "quick.py"}',
          f'--config.data.dir={data_dir}', '--config.data.source=local',
          '--config.model.widths=(4, 8)', '--config.batch_size=8',
          '--config.num_train_steps=4', '--config.log_every_steps=2',
          '--config.checkpoint.every_steps=2', '--config.eval.every_steps=0',
          '--config.eval.num_pairs=24', '--config.eval.batch_size=8']


def test_train_then_eval_from_the_command_line(data_dir, tmp_path):
  workdir = tmp_path / 'run'
  result = _launch(*_tiny_flags(data_dir), f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Final eval at step 4' in result.stderr
  trained = json.loads((workdir / 'eval' / 'metrics.json').read_text())
  assert trained['step'] == 4 and trained['num_pairs'] == 24
  (workdir / 'eval' / 'metrics.json').unlink()
  # --mode=eval needs no --config: it reads the run's config.json.
  result = _launch('--mode=eval', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads((workdir / 'eval' / 'metrics.json').read_text()) == trained


def test_user_errors_are_one_line_without_traceback(data_dir, tmp_path):
  result = _launch('--mode=eval', f'--workdir={tmp_path / "empty"}')
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: ') and 'not a mixae_jax run folder' in result.stderr
  result = _launch(*_tiny_flags(data_dir), '--config.data.dir=/no/such/folder',
                   f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert 'error: data folder /no/such/folder does not exist' in result.stderr
  # --verbose shows the traceback for debugging.
  result = _launch('--mode=eval', f'--workdir={tmp_path / "empty"}', '--verbose')
  assert result.returncode != 0 and 'Traceback' in result.stderr
