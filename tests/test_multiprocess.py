"""Two processes on one machine (gloo CPU collectives) train as one process
with two devices does, through a kill and a rerun, sharing one workdir in a
bucket (as a pod slice's hosts do); checkpoints restore on one; bad set-ups
fail fast."""

import json
import os
import pathlib
import socket
import subprocess
import sys

from etils import epath
import numpy as np
import pytest

from mixae_jax import config_io
from mixae_jax import distributed
from mixae_jax import evaluate
from mixae_jax import writers
from mixae_jax.errors import ConfigError
from multiprocess_run import CONFIG_OVERRIDES

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


def environment(devices: int = 1) -> dict[str, str]:
  """The processes' environment: `devices` simulated CPU devices each."""
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                      f' --xla_force_host_platform_device_count={devices}')
  return env


def launch(data_dir, workdir, *flags, devices: int = 1,
           lag_s: float = 0) -> subprocess.Popen:
  """``launch.py`` training the tiny run of multiprocess_run.py; with
  `lag_s`, the process reaches its checks that long after it joined."""
  overrides = [f'--config.{k}={v}' for k, v in CONFIG_OVERRIDES.items()]
  program = (['tests/late_process.py', str(lag_s)] if lag_s else
             ['launch.py'])
  return subprocess.Popen(
      [sys.executable, *program, '--config=configs/tiny.py',
       '--config.data.source=local', f'--config.data.dir={data_dir}',
       *overrides, f'--workdir={workdir}', *flags],
      cwd=REPO, env=environment(devices), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def processes(port: int, n: int = 2) -> list[list[str]]:
  """Each process's flags."""
  return [[f'--coordinator_address=127.0.0.1:{port}', f'--num_processes={n}',
           f'--process_id={i}'] for i in range(n)]


def finish(process: subprocess.Popen) -> tuple[int, str]:
  """Waits for `process`; returns its exit status and stderr."""
  _, stderr = process.communicate(timeout=TIMEOUT_S)
  return process.returncode, stderr


def train_losses(workdir: epath.Path) -> dict[int, float]:
  """The logged training loss per step (the last record of each step)."""
  return {r['step']: r['loss']
          for r in writers.read_jsonl(workdir / 'metrics.jsonl')
          if r['kind'] == 'train'}


def eval_record(folder: epath.Path) -> dict:
  return json.loads((folder / 'eval' / 'metrics.json').read_text())


def assert_same_scores(got: dict, want: dict) -> None:
  for source in ('mnist', 'cifar10'):
    for name in ('psnr', 'ssim', 'mse'):
      np.testing.assert_allclose(got[source][name], want[source][name],
                                 rtol=1e-5, err_msg=f'{source} {name}')


def helper(data_dir, workdir, port, process_id, *points) -> subprocess.Popen:
  """One process of multiprocess_run.py, which can kill itself at `points`."""
  return subprocess.Popen(
      [sys.executable, str(REPO / 'tests' / 'multiprocess_run.py'),
       str(data_dir), str(workdir), str(port), '2', str(process_id), *points],
      cwd=REPO, env=environment(), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope='module')
def two_processes(data_dir, bucket, tmp_path_factory):
  """The tiny run on two processes, one of which dies mid-step 3 and both
  of which are then rerun, with one workdir in a bucket; and the same run
  on one process, two devices, in a local folder.

  Returns:
    The two runs' folders, and the rerun's process 0's log.
  """
  root = tmp_path_factory.mktemp('multiprocess')
  multi = epath.Path(f'{bucket}/two_processes')
  # Alongside: the two processes spend much of their time waiting on each
  # other, and this run fills it.
  reference = launch(data_dir, root / 'one_process', devices=2)
  port = free_port()
  survivor = helper(data_dir, multi, port, 0)
  victim = helper(data_dir, multi, port, 1, 'step:3')
  assert finish(victim)[0] == -9
  # The survivor waits in a collective until JAX's heartbeat timeout; a
  # cluster's scheduler ends the whole job when one task dies. So does this.
  survivor.kill()
  survivor.communicate()
  assert sorted(p.name for p in (multi / 'checkpoints').iterdir()) == ['2']
  # Rerun, through launch.py, as a user would.
  runs = [launch(data_dir, multi, *flags) for flags in processes(free_port())]
  results = [finish(p) for p in runs]
  for status, stderr in results:
    assert status == 0, stderr[-3000:]
  status, stderr = finish(reference)
  assert status == 0, stderr[-3000:]
  return multi, root / 'one_process', results[0][1]


def test_two_processes_train_as_one_process_with_two_devices(two_processes):
  multi, single, _ = two_processes
  got, want = train_losses(multi), train_losses(single)
  print('step  two processes   one process, two devices')
  for step in sorted(want):
    print(f'{step:4d}  {got[step]:.7f}       {want[step]:.7f}')
  assert sorted(got) == sorted(want) == list(range(1, 7))
  np.testing.assert_allclose([got[s] for s in want], list(want.values()),
                             rtol=1e-5)
  assert_same_scores(eval_record(multi), eval_record(single))


def test_process_0_alone_writes_and_one_process_restores(two_processes,
                                                         tmp_path):
  multi, *_ = two_processes
  # Written once: one record per step, one event file, one config.
  steps = [r['step'] for r in writers.read_jsonl(multi / 'metrics.jsonl')
           if r['kind'] == 'train']
  assert steps == sorted(set(steps))
  assert len(list((multi / 'tensorboard').iterdir())) == 2  # One a run.
  assert (multi / 'config.json').is_file() and (multi / 'loss.png').is_file()
  assert sorted(p.name for p in (multi / 'checkpoints').iterdir()) == [
      '2', '4', '6']
  assert not list(multi.glob('.mixae_write_test*'))
  # Trained on two processes, evaluated on one (this one, one device).
  evaluate.evaluate_checkpoint(config_io.load(multi), multi, tmp_path)
  assert_same_scores(eval_record(tmp_path), eval_record(multi))


def test_kill_one_process_then_rerun_both_resumes(two_processes):
  """Process 1 died mid-step 3; rerun, both went on from step 2."""
  *_, log = two_processes
  assert 'Resuming from the checkpoint at step 2.' in log


def test_bad_set_ups_fail_fast_on_every_process(data_dir, tmp_path):
  port = free_port()  # Nobody listens there.
  unreachable = launch(data_dir, tmp_path / 'a', *processes(port)[1],
                       '--coordinator_timeout=2')
  # Process 1 lags: process 0 finds the mistake first, and must not take
  # the coordinator away before process 1 has found it too.
  indivisible = [launch(data_dir, tmp_path / 'b', '--config.batch_size=3',
                        *flags, lag_s=4 * i)
                 for i, flags in enumerate(processes(free_port()))]
  elsewhere = [launch(data_dir, tmp_path / f'c{i}', *flags)
               for i, flags in enumerate(processes(free_port()))]

  def one_line(process) -> str:
    status, stderr = finish(process)
    lines = [l for l in stderr.splitlines() if l.startswith('error: ')]
    assert status == 2 and len(lines) == 1, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    return lines[0]

  assert one_line(unreachable) == (
      f'error: process 1 of 2: no coordinator answered at 127.0.0.1:{port} '
      'within 2 s (Connection refused); start process 0 there (all processes '
      'with the same --coordinator_address), or raise --coordinator_timeout')
  for process in indivisible:
    assert one_line(process) == (
        'error: batch_size=3 does not divide over the 2 devices (2 processes '
        'of 1); use a multiple of 2, e.g. 2')
  for process in elsewhere:
    assert one_line(process).startswith(
        'error: --workdir differs between processes')
  assert not (tmp_path / 'b' / 'checkpoints').exists()


@pytest.mark.parametrize('args, message', [
    ((None, 2, None), '--coordinator_address, --num_processes and '
     '--process_id go together: give all three'),
    (('127.0.0.1:1', 2, 2), '--process_id=2 does not fit --num_processes=2: '
     'it must be 0 to 1'),
    (('localhost', 2, 1), '--coordinator_address=localhost is not host:port'),
])
def test_flag_mistakes_are_named_before_jax_starts(args, message):
  with pytest.raises(ConfigError, match=message):
    distributed.initialize(*args)


def test_flag_mistakes_get_one_line(trained_run):
  _, workdir, _ = trained_run
  runs = {
      '--distributed found no cluster to join': subprocess.Popen(
          [sys.executable, 'launch.py', '--mode=eval', f'--workdir={workdir}',
           '--distributed'], cwd=REPO, env=environment(),
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
      '--mode=separate runs in one process; only --mode=train and '
      '--mode=eval run on several': subprocess.Popen(
          [sys.executable, 'launch.py', '--mode=separate',
           f'--workdir={workdir}', '--input=x.png', *processes(1)[0]],
          cwd=REPO, env=environment(), stdout=subprocess.PIPE,
          stderr=subprocess.PIPE, text=True),
  }
  for message, process in runs.items():
    status, stderr = finish(process)
    assert status == 2, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith(f'error: {message}')
    assert 'Traceback' not in stderr
