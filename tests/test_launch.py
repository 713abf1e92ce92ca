"""launch.py end to end, as a user runs it: train, eval, and user errors."""

import fcntl
import json
import os
import pathlib
import pty
import shutil
import struct
import subprocess
import sys
import termios

import pytest
from tensorboard.backend.event_processing import event_accumulator

from conftest import REPO


def _launch(*args, timeout=600):
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _tiny_flags(data_dir):
  return ['--config=configs/tiny.py', f'--config.data.dir={data_dir}',
          '--config.data.source=local', '--config.num_train_steps=4',
          '--config.checkpoint.every_steps=2', '--config.eval.num_pairs=24',
          '--config.eval.batch_size=8']


def test_user_errors_are_one_line_without_traceback(data_dir, tmp_path):
  result = _launch('--mode=eval', f'--workdir={tmp_path / "empty"}')
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: ') and 'mixae_jax run folder' in result.stderr
  result = _launch(*_tiny_flags(data_dir), '--config.data.dir=/no/such/folder',
                   f'--workdir={tmp_path / "w"}')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert 'error: data folder /no/such/folder does not exist' in result.stderr
  # --verbose shows the traceback for debugging.
  result = _launch('--mode=eval', f'--workdir={tmp_path / "empty"}', '--verbose')
  assert result.returncode != 0 and 'Traceback' in result.stderr


def test_train_on_a_terminal_then_eval_from_the_command_line(data_dir, tmp_path):
  workdir = tmp_path / 'run'
  leader, follower = pty.openpty()  # stderr is a terminal: the bar turns on.
  fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 120, 0, 0))
  proc = subprocess.Popen(
      [sys.executable, 'launch.py', *_tiny_flags(data_dir), f'--workdir={workdir}',
       '--config.eval.every_steps=2'],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=follower,
      env=dict(os.environ, PYTHONUNBUFFERED='1'))
  os.close(follower)
  output = b''
  while True:
    try:
      chunk = os.read(leader, 4096)
    except OSError:  # The child closed the terminal.
      break
    if not chunk:
      break
    output += chunk
  assert proc.wait(timeout=600) == 0, output[-2000:]
  text = output.decode(errors='replace')
  assert '4/4' in text and 'img_s=' in text and 'step/s' in text, text[-2000:]
  assert 'step 2/4  loss' not in text  # The bar replaces the log lines.
  events = event_accumulator.EventAccumulator(str(workdir / 'tensorboard'))
  events.Reload()
  assert [e.step for e in events.Images('eval/samples')] == [2, 4]
  assert 'train/loss' in events.Tags()['scalars']
  # Without a terminal the numbers still go to metrics.jsonl.
  assert '"kind": "train"' in (workdir / 'metrics.jsonl').read_text()
  trained = json.loads((workdir / 'eval' / 'metrics.json').read_text())
  assert trained['step'] == 4 and trained['num_pairs'] == 24
  (workdir / 'eval' / 'metrics.json').unlink()
  # --mode=eval needs no --config: it reads the run's config.json (and
  # gives the end of training's figures; the exact comparison is
  # test_train.py's).
  from mixae_jax.apps import cli  # pylint: disable=g-import-not-at-top
  assert cli.run('eval', str(workdir)) == trained
  assert json.loads((workdir / 'eval' / 'metrics.json').read_text()) == trained


def test_help_exits_zero_and_lists_modes_and_flags():
  result = _launch('--help')
  assert result.returncode == 0, result.stderr[-2000:]
  for word in ('--mode', 'train|eval|separate|export', '--workdir', '--config',
               '--input', '--digit', '--output_dir', '--[no]resize'):
    assert word in result.stdout, word


def test_console_script_finds_configs_from_any_folder(data_dir, tmp_path):
  mixae = shutil.which('mixae', path=str(pathlib.Path(sys.executable).parent))
  if mixae is None:
    pytest.skip('the mixae console script is not installed (pip install -e .)')
  # configs/tiny.py builds on quick.py and dual.py (`from configs import`),
  # which no installed package provides: the command finds them itself.
  result = subprocess.run(
      [mixae, '--config=configs/tiny.py', f'--config.data.dir={data_dir}',
       '--config.batch_size=0', f'--workdir={tmp_path / "w"}'], cwd=tmp_path,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      'error: batch_size=0 must be an integer >= 1')
  assert not (tmp_path / 'w').exists()


def test_sigterm_from_outside_saves_the_step_and_exits_143(data_dir, tmp_path):
  """What a preempted Colab or Kubernetes run gets: SIGTERM, while training."""
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from mixae_jax import checkpoints  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'run'
  flags = _tiny_flags(data_dir) + [
      '--config.num_train_steps=100000', '--config.log_every_steps=1',
      '--config.checkpoint.every_steps=100000', '--config.eval.every_steps=0']
  process = subprocess.Popen(
      [sys.executable, 'launch.py', *flags, f'--workdir={workdir}'], cwd=REPO,
      env=dict(os.environ, PYTHONUNBUFFERED='1'), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  try:
    metrics = workdir / 'metrics.jsonl'
    while not (metrics.is_file() and metrics.read_text().count('\n') >= 2):
      assert process.poll() is None, process.communicate()[1][-2000:]
      time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
  finally:
    process.kill()
  assert process.returncode == 143, stderr[-2000:]
  assert 'Traceback' not in stderr
  last = stderr.strip().splitlines()[-1]
  assert last.startswith('interrupted at step ') and last.endswith(
      ': saved a checkpoint; run the same command to resume'), last
  step = int(last.split()[3].rstrip(':'))
  manager = checkpoints.create_manager(workdir, read_only=True)
  assert manager.latest_step() == step >= 2
