"""Released models: export a run's model, restore and evaluate it anywhere."""

import json
import pathlib
import re

import numpy as np
import pytest

from mixae_jax import Separator, checkpoints, config_io, evaluate
from mixae_jax.apps import export as release
from mixae_jax.errors import CheckpointError


def _size(folder: pathlib.Path) -> int:
  return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


def _array_bytes(shapes: dict) -> int:
  """Bytes of the floating arrays in a {path: (shape, dtype)} listing."""
  return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
             for path, (shape, dtype) in shapes.items() if path != 'step')


@pytest.fixture(scope='module')
def released(trained_run, tmp_path_factory):
  """An exact (float32) release of the tiny run."""
  folder = tmp_path_factory.mktemp('release') / 'dual'
  release.export(trained_run[1], folder, dtype='float32')
  return folder


def test_export_keeps_the_model_and_drops_the_optimizer(trained_run, released):
  workdir = trained_run[1]
  assert sorted(p.name for p in released.iterdir()) == ['checkpoints',
                                                        'config.json']
  manager = checkpoints.create_manager(released, read_only=True)
  assert manager.all_steps() == [6]
  # Params, batch_stats and the step; no optimizer state.
  assert set(manager.item_metadata(6)) == {'params', 'batch_stats', 'step'}
  # Params and batch_stats only: much less than a training checkpoint.
  assert _size(released) < 0.6 * _size(workdir / 'checkpoints' / '6')
  saved = json.loads((released / 'config.json').read_text())
  assert saved['data']['dir'] == ''  # The trainer's folder means nothing here.


def test_export_names_no_folder_of_the_machine_that_trained(trained_run,
                                                            tmp_path):
  # A fine-tuned run names the folder it started from; a release must not.
  import shutil  # pylint: disable=g-import-not-at-top
  run = tmp_path / 'finetuned'
  shutil.copytree(trained_run[1], run)
  saved = json.loads((run / 'config.json').read_text())
  saved['init_from'] = '/home/someone/.device_data/gpu1/release'
  (run / 'config.json').write_text(json.dumps(saved))
  release.export(run, tmp_path / 'release', dtype='float32')
  exported = json.loads((tmp_path / 'release' / 'config.json').read_text())
  assert exported['init_from'] == '' and exported['data']['dir'] == ''
  assert 'someone' not in (tmp_path / 'release' / 'config.json').read_text()


def test_released_model_separates_like_the_run(trained_run, released):
  mixtures = np.random.default_rng(0).uniform(0, 1, (5, 32, 32, 3)).astype(
      np.float32)
  from_run = Separator.restore(trained_run[1])(mixtures)
  from_release = Separator.restore(released)(mixtures)
  assert Separator.restore(released).step == 6
  for a, b in zip(from_run, from_release):
    np.testing.assert_array_equal(a, b)


def test_eval_of_a_release_writes_elsewhere_and_matches_training(
    trained_run, released, tmp_path):
  config, _, record = trained_run
  saved = config_io.load(released)
  saved.data.dir = config.data.dir  # This machine's data (as MIXAE_DATA_DIR).
  again = evaluate.evaluate_checkpoint(saved, released, output_dir=tmp_path)
  assert again == record
  assert json.loads((tmp_path / 'eval' / 'metrics.json').read_text()) == (
      json.loads(json.dumps(record)))
  assert not (released / 'eval').exists()  # The release folder is untouched.


def test_export_refuses_to_overwrite_a_release(trained_run, released):
  before = _size(released)
  with pytest.raises(CheckpointError, match='already holds a model'):
    release.export(trained_run[1], released)
  assert _size(released) == before


def test_export_needs_an_output_dir(trained_run):
  from mixae_jax.apps import cli
  from mixae_jax.errors import ConfigError
  with pytest.raises(ConfigError, match='--mode=export needs --output_dir'):
    cli.run('export', str(trained_run[1]), output_dir=None)


def test_a_saved_data_folder_absent_here_gives_way_to_this_machines(
    trained_run, released, monkeypatch, tmp_path):
  config, workdir, _ = trained_run
  monkeypatch.setenv('MIXAE_DATA_DIR', str(tmp_path))
  # The run's own folder exists here: it is kept.
  assert config_io.load(workdir).data.dir == config.data.dir
  # A release saves no folder: this machine's MIXAE_DATA_DIR is used.
  assert config_io.load(released).data.dir == str(tmp_path)
  # Unset: the folder set-up wrote (`make`: .cache/data), where one runs.
  monkeypatch.delenv('MIXAE_DATA_DIR')
  (tmp_path / '.cache' / 'data').mkdir(parents=True)
  monkeypatch.chdir(tmp_path)
  assert config_io.load(released).data.dir == str(tmp_path / '.cache' / 'data')


def test_a_float16_release_is_half_the_size_and_separates_alike(
    trained_run, released, tmp_path):
  half = tmp_path / 'half'
  release.export(trained_run[1], half)  # The default: float16 storage.
  # Every stored float is float16, so the arrays take half the bytes. (The
  # folder sizes are no measure here: a tiny model's few KB of arrays are
  # lost in metadata whose packing varies between saves. The committed
  # release's bytes per parameter are checked in test_real_data.py.)
  manager = checkpoints.create_manager(half, read_only=True)
  stored = checkpoints._shapes(manager.item_metadata(6))  # pylint: disable=protected-access
  exact = checkpoints._shapes(  # pylint: disable=protected-access
      checkpoints.create_manager(released, read_only=True).item_metadata(6))
  assert stored['params/ConvBlock_0/Conv_0/kernel'][1] == 'float16'
  assert {d for path, (_, d) in stored.items() if path != 'step'} == {'float16'}
  assert stored.keys() == exact.keys()
  assert _array_bytes(stored) * 2 == _array_bytes(exact)
  separator = Separator.restore(half)
  assert separator.state.params['ConvBlock_0']['Conv_0']['kernel'].dtype == (
      np.float32)  # Stored in float16, computed in float32.
  mixtures = np.random.default_rng(1).uniform(0, 1, (5, 32, 32, 3)).astype(
      np.float32)
  for a, b in zip(Separator.restore(released)(mixtures), separator(mixtures)):
    np.testing.assert_allclose(a, b, atol=5e-3)


def _flat(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = tuple(value) if isinstance(value, list) else value
  return out


def test_the_release_recipe_is_the_config_pretrained_dual_was_trained_with():
  # configs/release.py's second stage is what pretrained/dual saved (its
  # config.json was upgraded once through config_io's table): every field
  # but the folders of the machine that trained it.
  from configs import release as recipe  # pylint: disable=g-import-not-at-top
  repo = pathlib.Path(__file__).resolve().parents[1]
  saved = json.loads((repo / 'pretrained/dual/config.json').read_text())
  finetune = recipe.get_config('finetune').to_dict()
  saved, finetune = _flat(saved), _flat(finetune)
  assert saved.pop('init_from') == saved.pop('data.dir') == ''
  assert finetune.pop('init_from') == 'runs/release_pretrain_export'
  finetune.pop('data.dir')  # Each machine's own.
  assert saved == finetune
  # The first stage differs where its docstring says, and is frozen: a
  # change to configs/dual.py does not move it.
  pretrain = _flat(recipe.get_config('pretrain').to_dict())
  pretrain.pop('data.dir')
  assert pretrain.pop('init_from') == ''
  assert {k for k in pretrain if pretrain[k] != finetune[k]} == {
      'seed', 'num_train_steps', 'optimizer.learning_rate',
      'optimizer.warmup_steps', 'eval.every_steps', 'checkpoint.every_steps',
      'log_every_steps'}
  assert (pretrain['num_train_steps'], pretrain['optimizer.learning_rate']) == (
      36_000, 1e-3)
  source = (repo / 'configs' / 'release.py').read_text()
  assert not re.search(r'^\s*(from|import) configs', source, re.M)
  with pytest.raises(ValueError, match='stage must be one of'):
    recipe.get_config('third')
