"""A workdir in a bucket: kill and resume, the lock, every mode reading and
writing there, and one line for each way a bucket goes wrong.

The bucket is on a real GCS-compatible server on 127.0.0.1 (conftest's
`bucket`), reached through the clients a user's machine uses: gcsfs for
files, tensorstore for orbax's arrays. Two processes sharing a workdir in
the bucket: test_multiprocess.py.
"""

import json
import os
import subprocess
import sys
import time

from etils import epath
import jax
import numpy as np
import pytest

from conftest import REPO
from mixae_jax import checkpoints, config_io, evaluate, train, train_state, writers
from mixae_jax.apps import cli, export, separate
from mixae_jax.apps.demo_session import DemoModel
from mixae_jax.errors import CheckpointError, ConfigError
from mixae_jax.inference import Separator


def _kill_run(data_dir, workdir, log, *points, marker=None):
  """tests/kill_run.py into `workdir`, its stderr to the file `log` (a pipe
  nobody reads while it runs could fill and stall it); not waited for."""
  with open(log, 'w') as stderr:
    return subprocess.Popen(
        [sys.executable, str(REPO / 'tests' / 'kill_run.py'), str(data_dir),
         workdir, *points], cwd=REPO, stderr=stderr, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED='1',
                 **({'KILL_RUN_MARKER': str(marker)} if marker else {})))


def _metrics(folder) -> dict:
  return json.loads((epath.Path(folder) / 'eval' / 'metrics.json').read_text())


def _losses(folder) -> dict[int, float]:
  return {r['step']: r['loss'] for r in writers.read_jsonl(
      epath.Path(folder) / writers.METRICS_FILE) if r['kind'] == 'train'}


@pytest.fixture(scope='module')
def bucket_run(data_dir, bucket, kill_reference, tmp_path_factory):
  """The kill tests' run in the bucket: SIGKILLed mid-step 3, then resumed
  and held at step 7 while a second training tries the same workdir.

  Returns:
    (workdir URL, the same run made locally without a stop, what happened).
  """
  import kill_run  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('bucket_run')
  workdir = f'{bucket}/killed'
  killed = _kill_run(data_dir, workdir, root / 'killed.log', 'step:3')
  seen = {'killed': killed.wait(timeout=600),
          'complete_after_kill': checkpoints.create_manager(
              workdir, read_only=True).all_steps(),
          'lock_left': (epath.Path(workdir) / '.train.lock').exists()}
  first = _kill_run(data_dir, workdir, root / 'resumed.log', 'PAUSE@step:7',
                    marker=root / 'm')
  deadline = time.monotonic() + 600
  while not (root / 'm.paused').exists() and first.poll() is None:
    assert time.monotonic() < deadline, (root / 'resumed.log').read_text()
    time.sleep(0.05)
  try:
    train.train_and_evaluate(kill_run.config(data_dir), workdir)
  except CheckpointError as e:
    seen['second'] = (str(e), first.pid)
  (root / 'm.go').touch()
  seen['resumed'] = first.wait(timeout=600)
  seen['resumed_log'] = (root / 'resumed.log').read_text()
  seen['lock_after'] = (epath.Path(workdir) / '.train.lock').exists()
  return workdir, kill_reference, seen


def test_a_run_in_a_bucket_is_killed_then_resumes_exactly(bucket_run):
  workdir, reference, seen = bucket_run
  assert seen['killed'] == -9
  # The step in flight and the one before were lost; no partial save counts.
  assert seen['complete_after_kill'] == [2]
  assert seen['resumed'] == 0, seen['resumed_log'][-3000:]
  assert 'Resuming from the checkpoint at step 2.' in seen['resumed_log']
  assert _metrics(workdir) == _metrics(reference)
  assert _losses(workdir) == _losses(reference)
  run = epath.Path(workdir)
  for name in ('config.json', 'loss.png', 'eval/samples.png',
               'eval/per_class.json'):
    assert (run / name).is_file(), name
  assert len(list((run / 'tensorboard').iterdir())) == 2  # One a run.
  assert sorted(p.name for p in (run / 'checkpoints').iterdir()) == [
      '4', '6', '8']


def test_a_workdir_in_a_bucket_is_held_by_one_run_at_a_time(bucket_run):
  workdir, _, seen = bucket_run
  # The SIGKILLed run left its lock object; its process is gone, so the
  # next run took it over (the resume above).
  assert seen['lock_left']
  message, pid = seen['second']
  assert message.startswith(
      f'--workdir {workdir} is in use by a training run still going (pid '
      f'{pid} on '), message
  assert message.endswith('(nothing in it was changed)')
  assert not seen['lock_after']  # Released at the end.


def test_eval_export_separate_and_the_demo_from_a_bucket(bucket_run, bucket,
                                                         tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  workdir, _, _ = bucket_run
  config = config_io.load(workdir)
  record = evaluate.evaluate_checkpoint(config, workdir, f'{bucket}/evaluated')
  assert record == _metrics(workdir) == _metrics(f'{bucket}/evaluated')

  model = export.export(workdir, f'{bucket}/model')
  assert sorted(p.name for p in model.iterdir()) == [
      'README.md', 'config.json', 'eval_metrics.json', 'model.safetensors']
  from_bucket = Separator.restore(f'{bucket}/model')
  assert from_bucket.step == 8
  mixture = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
  digits, images = from_bucket(mixture)
  want_digits, want_images = Separator.restore(workdir)(mixture)
  # float16 weights against the checkpoint's float32 ones.
  np.testing.assert_allclose(digits, want_digits, atol=2e-2)
  np.testing.assert_allclose(images, want_images, atol=2e-2)

  Image.fromarray((mixture[0] * 255).astype(np.uint8)).save(tmp_path / 'a.png')
  written = separate.separate_files(f'{bucket}/model', f'{bucket}/separated',
                                    inputs=[str(tmp_path / 'a.png')])
  assert sorted(p.name for p in written) == [
      'a_digit.png', 'a_image.png', 'a_separation.png']
  assert all(p.is_file() for p in written)

  demo = DemoModel.restore(f'{bucket}/model')
  assert demo.separator.step == 8

  # A new run starts from the bucket's model (config.init_from).
  started = train_state.init_from(
      train_state.create_train_state(config), f'{bucket}/model')
  for got, want in zip(jax.tree.leaves(started.params),
                       jax.tree.leaves(from_bucket.state.params)):
    np.testing.assert_array_equal(got, want)


def test_a_bucket_that_goes_wrong_is_named_in_one_line(bucket, data_dir,
                                                       monkeypatch):
  from conftest import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(data_dir)
  with pytest.raises(CheckpointError) as e:
    cli.run('train', 'gs://no-such-bucket/run', config)
  assert str(e.value) == (
      'cannot write to gs://no-such-bucket/run: the bucket gs://no-such-bucket '
      'does not exist (or these credentials cannot see it); create it or give '
      'another one; make it writable, free disk space, or choose another '
      '--workdir (nothing in it was changed)')
  with pytest.raises(ConfigError, match=r'^--workdir=ftp://host/run: ftp:// is '
                     r'not a storage this reads or writes; give a local folder '
                     r'or a URL of gs://, s3://, az://, hf://$'):
    cli.run('train', 'ftp://host/run', config)
  with pytest.raises(CheckpointError, match=r'^gs://runs/none does not exist'):
    cli.run('eval', f'{bucket}/none')
  monkeypatch.setitem(sys.modules, 'gcsfs', None)  # Not installed.
  with pytest.raises(ConfigError) as e:
    cli.run('eval', f'{bucket}/killed')
  assert str(e.value) == (
      "--workdir=gs://runs/killed is in cloud storage, which needs gcsfs: "
      "pip install 'mixae_jax[cloud]'")


def _client_errors():
  """What the clients raise for each failure (their own classes)."""
  import aiohttp  # pylint: disable=g-import-not-at-top
  from gcsfs.retry import HttpError  # pylint: disable=g-import-not-at-top
  from google.auth import exceptions  # pylint: disable=g-import-not-at-top
  refused = 'the store refused access to gs://b ('
  gone = 'the connection to the store of gs://b failed ('
  return [
      (HttpError({'code': 401, 'message': 'Invalid Credentials'}), refused),
      (OSError('Forbidden: b/run/x\nanon does not have storage.objects.create '
               'access'), refused),
      (exceptions.DefaultCredentialsError('File key.json was not found.'),
       refused),
      (ValueError('PERMISSION_DENIED: tensorstore: 403'), refused),
      (FileNotFoundError('b/run/x'), 'the bucket gs://b does not exist'),
      (aiohttp.ServerDisconnectedError(), gone),
      (ConnectionResetError(104, 'Connection reset by peer'), gone),
      (ValueError('UNAVAILABLE: HTTP response code: 503'), gone),
  ]


def test_each_way_a_bucket_fails_is_named():
  """Refused credentials and lost connections, which an emulator cannot
  give (it takes any credentials), as the clients report them."""
  from mixae_jax import paths  # pylint: disable=g-import-not-at-top
  for error, words in _client_errors():
    try:  # As orbax and gcsfs raise them: wrapped, from deep inside.
      try:
        raise error
      except Exception as inner:  # pylint: disable=broad-except
        raise RuntimeError('save failed') from inner
    except RuntimeError as wrapped:
      reason = paths.describe_remote_error('gs://b/run', wrapped)
    assert reason is not None and reason.startswith(words), (error, reason)
    assert '\n' not in reason
  assert paths.describe_remote_error('gs://b/run', KeyError('x')) is None
