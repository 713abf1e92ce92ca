"""Faults: kills at any moment, full or read-only disks, damaged checkpoints,
exact reproducibility, and every bad input ending in one clear line."""

import errno
import hashlib
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import orbax.checkpoint as ocp
import numpy as np
import pytest

from conftest import REPO, tiny_config
from mixae_jax import checkpoints, train, train_state, writers
from mixae_jax.errors import CheckpointError, MixaeError


def _launch(*args, env=None, timeout=600):
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=REPO,
                        env=dict(os.environ, PYTHONUNBUFFERED='1', **(env or {})),
                        capture_output=True, text=True, timeout=timeout)


def _snapshot(folder: pathlib.Path) -> dict[str, str]:
  """Every file under `folder` with the hash of its bytes, but the training
  lock's (it names whichever run last held the folder, not saved work)."""
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(folder.rglob('*'))
          if p.is_file() and p.name != '.train.lock'}


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


# Each run of one workdir stops at these points, then resumes from where the
# last left off: (signals at trainer events, exit status, the last stderr
# line's start, the latest complete checkpoint afterwards).
STOPS = [
    # SIGKILL mid-step: the step in flight and the one before are lost.
    (['step:3'], -9, None, 2),
    # Ctrl-C mid-step: the step finishes and is saved.
    (['INT@step:3'], 130, 'interrupted at step 3: saved a checkpoint; run the '
     'same command to resume', 3),
    # Preemption during a periodic eval (after the save of step 4).
    (['TERM@eval:4'], 143, 'interrupted at step 4: saved', 4),
    # Ctrl-C, then Ctrl-C again during the save it started: out at once,
    # the incomplete save never counts.
    (['INT@step:5', 'INT@save:5'], 130, 'SIGINT again: stopped at once', 4),
    # Ctrl-C during a periodic save: that save completes and is the stop's.
    (['INT@save:6'], 130, 'interrupted at step 6: saved', 6),
]


def test_kills_and_signals_at_any_point_then_resume_exactly(
    data_dir, kill_reference, tmp_path):
  import kill_run  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'stopped'
  outcomes = []
  for points, status, last_line, latest in STOPS:
    stopped = _kill_run(data_dir, workdir, *points)
    lines = stopped.stderr.strip().splitlines()
    assert stopped.returncode == status, stopped.stderr[-2000:]
    assert 'Traceback' not in stopped.stderr
    if last_line:
      assert lines[-1].startswith(last_line), lines[-3:]
    manager = checkpoints.create_manager(workdir, read_only=True)
    complete = manager.all_steps()
    outcomes.append((points, stopped.returncode, max(complete)))
    assert max(complete) == latest, outcomes
    for step in complete:  # Every complete checkpoint restores.
      checkpoints.restore(manager, train_state.create_train_state(
          kill_run.config(data_dir)), step)
  # A SIGKILLed run left its lock file, not its lock: the runs above resumed.
  assert (workdir / '.train.lock').is_file()
  # The last run is held at step 7 while a second training is started into
  # its workdir (a resubmitted job): that one refuses, naming the live run,
  # and the first then finishes untouched (its scores below).
  first = subprocess.Popen(
      [sys.executable, str(REPO / 'tests' / 'kill_run.py'), str(data_dir),
       str(workdir), 'PAUSE@step:7'], cwd=REPO, stderr=subprocess.PIPE,
      text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
  paused = pathlib.Path(f'{workdir}.paused')
  while not paused.exists() and first.poll() is None:
    time.sleep(0.05)
  before = _snapshot(workdir / 'checkpoints')
  second = _launch('--config=configs/tiny.py', f'--workdir={workdir}',
                   '--config.data.source=local', f'--config.data.dir={data_dir}')
  assert second.returncode == 2, second.stderr[-2000:]
  assert second.stderr.strip() == (
      f'error: --workdir {workdir} is in use by a training run still going '
      f'(pid {first.pid} on {socket.gethostname()}, started '
      f'{second.stderr.split("started ")[1].split(")")[0]}); wait for it to '
      'finish or stop it, or choose another --workdir (nothing in it was '
      'changed)'), second.stderr
  assert _snapshot(workdir / 'checkpoints') == before
  pathlib.Path(f'{workdir}.go').touch()
  _, stderr = first.communicate(timeout=600)
  finished = subprocess.CompletedProcess(first.args, first.returncode, '',
                                         stderr)
  assert finished.returncode == 0, finished.stderr[-2000:]
  assert _resumed_from(finished.stderr) == 6
  left = [p.name for p in (workdir / 'checkpoints').iterdir()]
  assert all(name.isdigit() for name in left), left  # No temporary folders.
  expected = json.loads((kill_reference / 'eval' / 'metrics.json').read_text())
  assert json.loads((workdir / 'eval' / 'metrics.json').read_text()) == expected
  # The last logged loss of every log step equals the uninterrupted run's,
  # including the means over steps that an interruption split.
  def losses(folder):
    return {r['step']: r['loss'] for r in writers.read_jsonl(folder / 'metrics.jsonl')
            if r['kind'] == 'train'}
  assert losses(workdir) == losses(kill_reference)
  print('stops (signals, exit status, latest checkpoint):', outcomes)


# The same config and seed give identical metrics and losses, in another
# process even: test_kills_and_signals_at_any_point_then_resume_exactly.


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
  assert int(checkpoints.restore(manager, train_state.create_train_state(config)).step) == 3


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


# (config overrides as --config.<key>=value sets them, the words the error
# must contain). Each runs the command line's `cli.run`, in this process,
# against a copy of a trained run, which must come out unchanged; what the
# command line then prints (one line, exit 2) is the subprocess tests' below.
CLI_CASES = {
    'zero batch size': ({'batch_size': 0}, 'batch_size=0 must be an integer >= 1'),
    'negative batch size': ({'batch_size': -4}, 'batch_size=-4 must be'),
    'unknown model': ({'model.name': 'resnet'}, "model.name='resnet' is unknown"),
    'too many eval pairs': ({'eval.num_pairs': 5000},
                            'eval.num_pairs=5000 must be in 1..100'),
    'missing data folder': ({'data.dir': '/no/data'},
                            'data folder /no/data does not exist'),
    'other architecture': ({'model.widths': (8, 16)},
                           'saved by a different model or config'),
    'nan loss': ({'optimizer.learning_rate': 1e30, 'num_train_steps': 20,
                  'optimizer.schedule': 'constant'}, 'the training loss became'),
}


def test_bad_config_values_for_a_trained_run(trained_run, tmp_path):
  from mixae_jax.apps import cli  # pylint: disable=g-import-not-at-top
  config, source, _ = trained_run
  for case, (overrides, words) in CLI_CASES.items():
    workdir = tmp_path / case.replace(' ', '_')
    shutil.copytree(source, workdir)
    before = _snapshot(workdir)
    with pytest.raises(MixaeError) as error:
      cli.run('train', str(workdir), tiny_config(config.data.dir, **overrides))
    message = str(error.value)
    assert words in message and '\n' not in message, (case, message)
    after = _snapshot(workdir)
    # Nothing already there changed; at most a new TensorBoard event file.
    assert {k: after.get(k) for k in before} == before, case
    assert all(k.startswith('tensorboard/') for k in set(after) - set(before))


# Mistakes a mode finds once it runs: (mode, its arguments, the words).
RUN_CASES = [
    ('eval', {'workdir': '/no/such/run'},
     '/no/such/run does not exist: name a mixae_jax run folder'),
    ('eval', {'workdir': 'IMAGE'}, 'is a file, not a mixae_jax run folder'),
    ('separate', {'inputs': ['RUN/eval/samples.png'], 'resize': True,
                  'output_dir': 'IMAGE'},
     'it is a file, not a folder; make it writable, free disk space, or '
     'choose another --output_dir'),
    ('train', {}, '--mode=train needs --config'),
    ('separate', {'inputs': ['IMAGE'], 'output_dir': 'TMP/out'},
     'is not an image file'),
    ('separate', {'digit': 'IMAGE', 'output_dir': 'TMP/out'},
     '--digit and --image go together'),
    # A URL nothing here serves is named, never turned into a local folder
    # called 'ftp:'; one whose client is missing names what to install.
    # (Buckets themselves: test_cloud.py.)
    ('eval', {'workdir': 'ftp://host/run'}, '--workdir=ftp://host/run: ftp:// '
     'is not a storage this reads or writes; give a local folder or a URL of '
     'gs://, s3://, az://, hf://'),
    ('eval', {'output_dir': 's3://bucket/out'}, '--output_dir=s3://bucket/out '
     'is in cloud storage, which needs s3fs: pip install s3fs'),
    ('export', {'output_dir': 'ftp://host/release'}, 'is not a storage'),
    ('separate', {'inputs': ['IMAGE'], 'output_dir': 'ftp://host/out'},
     '--output_dir=ftp://host/out: ftp:// is not a storage'),
]


def test_mode_mistakes_are_one_line_errors(trained_run, tmp_path,
                                           monkeypatch):
  from mixae_jax.apps import cli  # pylint: disable=g-import-not-at-top
  from mixae_jax import train_state  # pylint: disable=g-import-not-at-top
  monkeypatch.chdir(tmp_path)  # Where a mangled URL's folder would appear.
  image = _corrupt_image(tmp_path)
  fill = lambda v: (v.replace('RUN', str(trained_run[1]))
                    .replace('IMAGE', str(image)).replace('TMP', str(tmp_path)))
  for mode, args, words in RUN_CASES:
    args = {k: [fill(x) for x in v] if isinstance(v, list) else
            fill(v) if isinstance(v, str) else v for k, v in args.items()}
    workdir = args.pop('workdir', str(trained_run[1]))
    with pytest.raises(MixaeError) as error:
      cli.run(mode, workdir, **args)
    assert words in str(error.value) and '\n' not in str(error.value), (
        mode, str(error.value))
  config = trained_run[0]
  for workdir, init_from, words in (
      ('ftp://host/run', '', '--workdir=ftp://host/run: ftp:// is not'),
      (str(tmp_path / 'tuned'), 'ftp://host/release',
       'config.init_from=ftp://host/release: ftp:// is not')):
    with pytest.raises(MixaeError, match=words):
      tuned = config.copy_and_resolve_references()
      tuned.init_from = init_from
      if init_from:
        train_state.init_from(train_state.create_train_state(tuned), init_from)
      else:
        cli.run('train', workdir, tuned)
  assert not list(tmp_path.glob('ftp:*')) and not list(tmp_path.glob('s3:*'))


@pytest.mark.parametrize('args, words', [
    # Found while parsing the command line, before any mode runs.
    (['--config=configs/nope.py', '--workdir=/tmp/x'], 'config file configs/nope.py not found'),
    (['--config=TMP', '--workdir=/tmp/x'], 'is a folder, not a config file'),
    (['--config=TMP/broken.py', '--workdir=/tmp/x'],
     "broken.py failed to load: SyntaxError: '(' was never closed (line 2); fix it"),
    (['--config=configs/quick.py'], 'Flag --workdir must have a value'),
    (['--config=configs/tiny.py', '--workdir=TMP/w', '--config.modle.name=unet'],
     'no such config field: \'modle\' Did you mean "model"'),
    (['--config=configs/tiny.py', '--workdir=TMP/w', '--config.batch_size=eight'],
     'invalid literal for int()'),
    # And one a mode finds, printed as every mode's is.
    (['--mode=eval', '--workdir=/no/such/run'], '/no/such/run does not exist: name '
     'a mixae_jax run folder'),
])
def test_more_command_line_mistakes(trained_run, tmp_path, args, words):
  image = _corrupt_image(tmp_path)
  (tmp_path / 'broken.py').write_text('def get_config():\n  return (\n')
  args = [a.replace('RUN', str(trained_run[1])).replace('IMAGE', str(image))
          .replace('TMP', str(tmp_path)) for a in args]
  result = _launch(*args)
  assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-2000:]
  assert words in result.stderr.strip().splitlines()[-1]


@pytest.fixture
def ctrl_c_raises():
  """Ctrl-C raising KeyboardInterrupt, as in a terminal, whatever this process
  inherited: a job that a shell starts in the background (``make test &``)
  inherits SIGINT ignored, and Python then keeps it so."""
  import signal  # pylint: disable=g-import-not-at-top
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  yield
  signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures('ctrl_c_raises')
def test_an_interrupted_eval_or_separate_leaves_earlier_outputs_whole(
    trained_run, tmp_path, monkeypatch):
  """A real SIGINT half-way through writing a PNG: every file already there
  stays whole (old or new, never partial), and no temporary file is left."""
  import signal  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from mixae_jax import evaluate  # pylint: disable=g-import-not-at-top
  from mixae_jax.apps import separate  # pylint: disable=g-import-not-at-top
  config, source, _ = trained_run
  run = tmp_path / 'run'
  shutil.copytree(source, run)
  separated = tmp_path / 'separated'
  mixture = tmp_path / 'mixture.png'
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(mixture)
  separate.separate_files(run, separated, inputs=[str(mixture)])
  real_save = Image.Image.save
  for attempt in ('eval', 'separate'):
    before = {**_snapshot(run / 'eval'), **_snapshot(separated)}
    writes = []

    def half_then_sigint(image, fp, *args, **kwargs):
      writes.append(fp)
      if len(writes) == 2:  # The second file: write half of it, then Ctrl-C.
        real_save(image, fp, *args, **kwargs)
        data = pathlib.Path(fp).read_bytes()
        pathlib.Path(fp).write_bytes(data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGINT)
      return real_save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, 'save', half_then_sigint)
    with pytest.raises(KeyboardInterrupt):
      if attempt == 'eval':
        evaluate.evaluate_checkpoint(config, run)
      else:
        separate.separate_files(run, separated, inputs=[str(mixture)])
    monkeypatch.setattr(Image.Image, 'save', real_save)
    assert len(writes) == 2, attempt
    for folder in (run / 'eval', separated):
      assert not [p for p in folder.iterdir() if '.tmp' in p.name], attempt
      for png in folder.glob('*.png'):
        with Image.open(png) as image:
          image.load()  # A partial PNG fails here.
    after = {**_snapshot(run / 'eval'), **_snapshot(separated)}
    assert after.keys() == before.keys()
    # The file being written when the signal came is the old one.
    assert after[pathlib.Path(writes[1]).name.split('.tmp')[0][1:] + '.png'] == (
        before[pathlib.Path(writes[1]).name.split('.tmp')[0][1:] + '.png'])


# A config file is Python: every way it can fail to give a ConfigDict, and
# the one line each gets (launch.py's own wiring is checked above).
CONFIG_FILES = {
    'folder': (None, 'is a folder, not a config file'),
    'dual.json': ('{"seed": 0}', r'is not a Python file \(\.py\)'),
    'empty.py': ('', 'is empty; it must define get_config()'),
    'syntax.py': ('def get_config(:\n', r'SyntaxError: invalid syntax \(line 1\)'),
    'imports.py': ('import no_such_module\n',
                   r"ModuleNotFoundError: No module named 'no_such_module' \(line 1\)"),
    'raises.py': ('def get_config():\n  return 1 / 0\n',
                  r'ZeroDivisionError: division by zero \(line 2\)'),
    'no_function.py': ('seed = 0\n', r'defines no get_config\(\)'),
}


@pytest.mark.parametrize('name', sorted(CONFIG_FILES))
def test_every_broken_config_file_gets_one_line(tmp_path, name):
  import importlib.util  # pylint: disable=g-import-not-at-top
  from mixae_jax.apps import config_files  # pylint: disable=g-import-not-at-top
  text, words = CONFIG_FILES[name]
  path = tmp_path / name
  if text is None:
    path.mkdir()
  else:
    path.write_text(text)
  message = config_files.config_file_problem(str(path))
  if message is None:  # Loadable as a file: load it as ml_collections does.
    try:
      spec = importlib.util.spec_from_file_location('config_config', path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      module.get_config()
    except Exception as e:  # pylint: disable=broad-except
      message = config_files.config_load_error(str(path), e)
  assert message is not None and str(path) in message
  assert re.search(words, message) and '\n' not in message, message


def test_a_foreign_config_json_is_named(tmp_path):
  from mixae_jax import config_io  # pylint: disable=g-import-not-at-top
  (tmp_path / 'config.json').write_text('{"learning_rate": 0.1}')
  with pytest.raises(CheckpointError, match=r'config.json is not a mixae_jax '
                     r'config: it lacks seed, batch_size, .*; pass --config'):
    config_io.load(tmp_path)
