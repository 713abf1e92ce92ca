"""Faults: kills at any moment, full or read-only disks, damaged checkpoints,
exact reproducibility, and every bad input ending in one clear line."""

import errno
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import orbax.checkpoint as ocp
import pytest

from conftest import REPO, tiny_config
from mixae_jax import checkpoints, train, writers
from mixae_jax.errors import CheckpointError


def _launch(*args, env=None, timeout=600):
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=REPO,
                        env=dict(os.environ, PYTHONUNBUFFERED='1', **(env or {})),
                        capture_output=True, text=True, timeout=timeout)


def _snapshot(folder: pathlib.Path) -> dict[str, str]:
  """Every file under `folder` with the hash of its bytes."""
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob('*')) if p.is_file()}


def _resumed_from(stderr: str) -> int | None:
  for line in stderr.splitlines():
    if 'Resuming from the checkpoint at step' in line:
      return int(line.rsplit(' ', 1)[1].rstrip('.'))
  return None


def _kill_run(data_dir, workdir, *point):
  return subprocess.run(
      [sys.executable, str(REPO / 'tests' / 'kill_run.py'), str(data_dir),
       str(workdir), *point], cwd=REPO, capture_output=True, text=True,
      env=dict(os.environ, PYTHONUNBUFFERED='1'), timeout=600)


def test_sigkill_mid_step_and_mid_save_then_resume_exactly(data_dir, tmp_path):
  import kill_run  # pylint: disable=g-import-not-at-top
  # The uninterrupted run, in this process: the same code and numbers.
  train.train_and_evaluate(kill_run.config(data_dir), tmp_path / 'reference')
  workdir = tmp_path / 'killed'
  outcomes = []
  for kill_at in ('step:3', 'save:6'):
    killed = _kill_run(data_dir, workdir, kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    entries = sorted(p.name for p in (workdir / 'checkpoints').iterdir())
    outcomes.append((kill_at, entries))
    manager = checkpoints.create_manager(workdir, read_only=True)
    complete = manager.all_steps()
    kill_step = int(kill_at.split(':')[1])
    # At most one save interval (2 steps) is lost; nothing partial counts.
    assert complete and kill_step - 2 <= max(complete) <= kill_step
    for step in complete:  # Every complete checkpoint restores.
      checkpoints.restore(manager, train.create_train_state(
          kill_run.config(data_dir)), step)
  finished = _kill_run(data_dir, workdir)
  assert finished.returncode == 0, finished.stderr[-2000:]
  assert _resumed_from(finished.stderr) in (4, 6)
  left = [p.name for p in (workdir / 'checkpoints').iterdir()]
  assert all(name.isdigit() for name in left), left  # No temporary folders.
  expected = json.loads((tmp_path / 'reference' / 'eval' / 'metrics.json').read_text())
  assert json.loads((workdir / 'eval' / 'metrics.json').read_text()) == expected
  # The last logged loss of every step equals the uninterrupted run's.
  def losses(folder):
    return {r['step']: r['loss'] for r in writers.read_jsonl(folder / 'metrics.jsonl')
            if r['kind'] == 'train'}
  assert losses(workdir) == losses(tmp_path / 'reference')
  print('kill outcomes (what the checkpoint folder held):', outcomes)


def test_same_config_and_seed_give_identical_metrics(trained_run, tmp_path):
  config, workdir, record = trained_run
  again = train.train_and_evaluate(config, tmp_path)
  print('run 1:', json.dumps(record, sort_keys=True))
  print('run 2:', json.dumps(again, sort_keys=True))
  assert again == record
  first = [r['loss'] for r in writers.read_jsonl(workdir / 'metrics.jsonl')
           if r['kind'] == 'train']
  second = [r['loss'] for r in writers.read_jsonl(tmp_path / 'metrics.jsonl')
            if r['kind'] == 'train']
  assert first == second


def test_other_seed_gives_other_metrics(trained_run, tmp_path):
  config = trained_run[0].copy_and_resolve_references()
  config.seed = 1
  assert train.train_and_evaluate(config, tmp_path) != trained_run[2]


@pytest.fixture(scope='module')
def short_run_source(data_dir, tmp_path_factory):
  config = tiny_config(data_dir, num_train_steps=3, **{'eval.every_steps': 0})
  workdir = tmp_path_factory.mktemp('short_run')
  train.train_and_evaluate(config, workdir)
  return config, workdir


@pytest.fixture
def short_run(short_run_source, tmp_path):
  """A copy of a finished 3-step run, for a test to damage."""
  config, source = short_run_source
  shutil.copytree(source, tmp_path, dirs_exist_ok=True)
  return config, tmp_path


def test_disk_full_during_a_save_keeps_earlier_checkpoints(short_run, monkeypatch):
  config, workdir = short_run
  before = _snapshot(workdir / 'checkpoints')
  real_save = ocp.CheckpointManager.save

  def full_disk(self, step, *args, **kwargs):
    if step > 3:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', full_disk)
  longer = config.copy_and_resolve_references()
  longer.num_train_steps = 6
  with pytest.raises(CheckpointError, match='could not save the checkpoint of '
                     'step 6 .*No space left on device; free disk space'):
    train.train_and_evaluate(longer, workdir)
  assert _snapshot(workdir / 'checkpoints') == before
  manager = checkpoints.create_manager(workdir, read_only=True)
  assert int(checkpoints.restore(manager, train.create_train_state(config)).step) == 3


def test_read_only_workdir_is_refused_before_any_work(short_run):
  config, workdir = short_run
  before = _snapshot(workdir)
  if os.geteuid() == 0:  # Root ignores permissions; the immutable flag binds it.
    if not shutil.which('chattr') or subprocess.run(
        ['chattr', '+i', str(workdir)], capture_output=True).returncode:
      pytest.skip('cannot make a folder read-only for root here (no chattr +i)')
    undo = ['chattr', '-i', str(workdir)]
  else:
    workdir.chmod(0o555)
    undo = ['chmod', '755', str(workdir)]
  try:
    longer = config.copy_and_resolve_references()
    longer.num_train_steps = 6
    with pytest.raises(CheckpointError, match=f'cannot write to {workdir}: '):
      train.train_and_evaluate(longer, workdir)
  finally:
    subprocess.run(undo, check=True)
  assert _snapshot(workdir) == before


def _data_files(workdir: pathlib.Path) -> list[pathlib.Path]:
  step = max(int(p.name) for p in (workdir / 'checkpoints').iterdir())
  # OCDBT keeps the arrays' bytes and its tree nodes in `d/` folders: the
  # per-process ones and the merged root's. Where each array lands varies
  # between saves (CI once found every array outside the per-process files), so
  # damage them all.
  files = (workdir / 'checkpoints' / str(step) / 'default').rglob('d/*')
  return sorted(p for p in files if p.is_file())


@pytest.mark.parametrize('damage', ['flipped_bytes', 'truncated', 'metadata'])
def test_a_damaged_checkpoint_is_refused(short_run, damage):
  config, workdir = short_run
  if damage == 'metadata':
    target = next((workdir / 'checkpoints' / '3').rglob('_METADATA'))
    target.write_text('{not json')
  for target in _data_files(workdir) if damage != 'metadata' else []:
    data = bytearray(target.read_bytes())
    if damage == 'flipped_bytes':
      # Every byte: the files also hold ranges no array refers to, where a
      # flip changes nothing restored (and so is rightly not an error).
      data = bytearray(b ^ 0x5A for b in data)
    else:
      data = data[:len(data) // 2]
    target.write_bytes(bytes(data))
  # A fresh process, as a user's would be: this one has the files cached.
  result = _launch('--mode=eval', f'--workdir={workdir}')
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: checkpoint ') and '/3 is corrupt' in last, last


def _corrupt_image(folder):
  path = folder / 'mixture.png'
  path.write_bytes(b'\x89PNG\r\n\x1a\n but not really')
  return path


# (extra flags, the words the one-line error must contain). Each runs the real
# command line against a copy of a trained run, which must come out unchanged.
CLI_CASES = {
    'mistyped config key': (['--config.modle.name=unet'],
                            'no such config field: \'modle\' Did you mean "model"'),
    'wrong type': (['--config.batch_size=eight'], 'invalid literal for int()'),
    'zero batch size': (['--config.batch_size=0'], 'batch_size=0 must be an integer >= 1'),
    'negative batch size': (['--config.batch_size=-4'], 'batch_size=-4 must be'),
    'unknown model': (['--config.model.name=resnet'], "model.name='resnet' is unknown"),
    'too many eval pairs': (['--config.eval.num_pairs=5000'],
                            'eval.num_pairs=5000 must be in 1..100'),
    'missing data folder': (['--config.data.dir=/no/data'],
                            'data folder /no/data does not exist'),
    'other architecture': (['--config.model.widths=(8, 16)'],
                           'saved by a different model or config'),
    'nan loss': (['--config.optimizer.learning_rate=1e30', '--config.num_train_steps=20',
                  '--config.optimizer.schedule=constant'],
                 'the training loss became'),
}


@pytest.mark.parametrize('case', sorted(CLI_CASES))
def test_bad_input_from_the_command_line(trained_run, tmp_path, case):
  extra, words = CLI_CASES[case]
  config, source, _ = trained_run
  workdir = tmp_path / 'run'
  shutil.copytree(source, workdir)
  before = _snapshot(workdir)
  result = _launch(f'--config={REPO / "configs" / "quick.py"}', f'--workdir={workdir}',
                   f'--config.data.dir={config.data.dir}', '--config.data.source=local',
                   '--config.model.widths=(4, 8)', '--config.batch_size=8',
                   '--config.eval.num_pairs=40', '--config.eval.batch_size=16', *extra)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert lines[-1].startswith('error: ') and words in lines[-1], lines[-3:]
  after = _snapshot(workdir)
  # Nothing already there changed; at most a new TensorBoard event file appeared.
  assert {k: after.get(k) for k in before} == before
  assert all(k.startswith('tensorboard/') for k in set(after) - set(before))


@pytest.mark.parametrize('args, words', [
    (['--config=configs/nope.py', '--workdir=/tmp/x'], 'config file configs/nope.py not found'),
    (['--mode=eval', '--workdir=/no/such/run'], 'not a mixae_jax run folder'),
    (['--config=configs/quick.py'], 'Flag --workdir must have a value'),
    (['--workdir=/tmp/x'], '--mode=train needs --config'),
    (['--mode=separate', '--workdir=RUN', '--input=IMAGE'], 'is not an image file'),
    (['--mode=separate', '--workdir=RUN', '--digit=IMAGE'], '--digit and --image go together'),
])
def test_more_command_line_mistakes(trained_run, tmp_path, args, words):
  image = _corrupt_image(tmp_path)
  args = [a.replace('RUN', str(trained_run[1])).replace('IMAGE', str(image)) for a in args]
  result = _launch(*args)
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert words in result.stderr.strip().splitlines()[-1]
