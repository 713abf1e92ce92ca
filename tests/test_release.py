"""Released models: export a run's model, restore and evaluate it anywhere."""

import json
import pathlib

import numpy as np
import pytest

from mixae_jax import Separator, checkpoints, configuration, release, train
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
  assert not checkpoints.is_full_state(manager, 6)
  # Params and batch_stats only: much less than a training checkpoint.
  assert _size(released) < 0.6 * _size(workdir / 'checkpoints' / '6')
  saved = json.loads((released / 'config.json').read_text())
  assert saved['data']['dir'] == ''  # The trainer's folder means nothing here.


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
  saved = configuration.load(released)
  saved.data.dir = config.data.dir  # This machine's data (as MIXAE_DATA_DIR).
  again = train.evaluate_checkpoint(saved, released, output_dir=tmp_path)
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
  from mixae_jax import cli
  from mixae_jax.errors import ConfigError
  with pytest.raises(ConfigError, match='--mode=export needs --output_dir'):
    cli.run('export', str(trained_run[1]), output_dir=None)


def test_a_saved_data_folder_absent_here_gives_way_to_mixae_data_dir(
    trained_run, released, monkeypatch, tmp_path):
  config, workdir, _ = trained_run
  monkeypatch.setenv('MIXAE_DATA_DIR', str(tmp_path))
  # The run's own folder exists here: it is kept.
  assert configuration.load(workdir).data.dir == config.data.dir
  # A release saves no folder: this machine's MIXAE_DATA_DIR is used.
  assert configuration.load(released).data.dir == str(tmp_path)
  monkeypatch.delenv('MIXAE_DATA_DIR')
  assert configuration.load(released).data.dir == ''


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
  # The release is configs/dual_gpu.py's run fine-tuned from its float16
  # export by configs/dual_gpu_finetune.py; each config differs from the one
  # it builds on only in the fields it sets.
  from configs import dual, dual_gpu, dual_gpu_finetune  # pylint: disable=g-import-not-at-top
  repo = pathlib.Path(__file__).resolve().parents[1]
  saved = _flat(json.loads((repo / 'pretrained/dual/config.json').read_text()))
  recipe = _flat(dual_gpu_finetune.get_config().to_dict())
  first = _flat(dual_gpu.get_config().to_dict())
  default = _flat(dual.get_config().to_dict())
  for cfg in (saved, recipe, first, default):
    cfg.pop('data.dir')  # Each machine's own.
  # Where the first stage's export lay: the GPU machine's path for it
  # (benchmarks/device_check.sh's carried folder), the recipe's own here.
  assert saved.pop('init_from').endswith('release')
  assert recipe.pop('init_from') == 'runs/dual_gpu_release'
  # Keys added since, whose default (None) keeps the loss the release had.
  for key in ('loss.digit_ssim_weight', 'loss.image_ssim_weight'):
    assert recipe.pop(key) is None and key not in saved
  assert saved == recipe
  assert {k for k in recipe if recipe[k] != first[k]} == {
      'seed', 'num_train_steps', 'optimizer.learning_rate',
      'optimizer.warmup_steps', 'eval.every_steps',
      'checkpoint.every_steps', 'log_every_steps'}
  assert {k for k in first if first[k] != default[k]} == {
      'num_train_steps', 'eval.every_steps', 'checkpoint.every_steps',
      'optimizer.learning_rate'}
  assert first['optimizer.learning_rate'] == 1e-3


def test_the_cpu_recipe_configs_differ_only_where_they_say():
  # The previous release's CPU recipe (docs/released_model.md): the
  # configs/dual_cpu.py run, then configs/dual_cpu_finetune.py cycles and a
  # last configs/dual_cpu_finetune_b128.py one.
  from configs import dual_cpu, dual_cpu_finetune, dual_cpu_finetune_b128  # pylint: disable=g-import-not-at-top
  recipe = _flat(dual_cpu_finetune_b128.get_config().to_dict())
  cycle = _flat(dual_cpu_finetune.get_config().to_dict())
  first = _flat(dual_cpu.get_config().to_dict())
  assert {k for k in recipe if recipe[k] != cycle[k]} == {
      'batch_size', 'num_train_steps', 'optimizer.warmup_steps',
      'eval.every_steps'}
  assert {k for k in cycle if cycle[k] != first[k]} == {
      'init_from', 'seed', 'num_train_steps', 'optimizer.learning_rate',
      'eval.every_steps'}
