"""Released models: export a run's model, restore and evaluate it anywhere."""

import json
import pathlib
import re

import jax
import ml_collections
import numpy as np
import pytest

from mixae_jax import Separator, checkpoints, config_io, evaluate
from mixae_jax.apps import export as release
from mixae_jax.errors import CheckpointError


def _size(folder: pathlib.Path) -> int:
  return sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())


@pytest.fixture(scope='module')
def released(trained_run, tmp_path_factory):
  """An exact (float32) release of the tiny run."""
  folder = tmp_path_factory.mktemp('release') / 'dual'
  release.export(trained_run[1], folder, dtype='float32')
  return folder


def test_export_writes_a_model_folder_without_the_optimizer(trained_run,
                                                           released):
  workdir = trained_run[1]
  assert sorted(p.name for p in released.iterdir()) == [
      'README.md', 'config.json', 'eval_metrics.json', 'model.safetensors']
  # Params and batch_stats only: much less than a training checkpoint.
  assert _size(released) < 0.6 * _size(workdir / 'checkpoints' / '6')
  saved = json.loads((released / 'config.json').read_text())
  assert saved['data']['dir'] == ''  # The trainer's folder means nothing here.
  # The run's final eval scored step 6: the card and the record carry it.
  record = json.loads((released / 'eval_metrics.json').read_text())
  assert record == trained_run[2]


def test_the_weights_file_describes_itself_to_numpy_alone(released):
  """safetensors + numpy rebuild the variables from the names alone, and
  the project's U-Net applied to them gives exactly the Separator's output."""
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  from mixae_jax import models  # pylint: disable=g-import-not-at-top

  arrays = load_file(str(released / 'model.safetensors'))
  assert all(isinstance(a, np.ndarray) for a in arrays.values())
  assert 'params.ConvBlock_0.Conv_0.kernel' in arrays
  with safe_open(str(released / 'model.safetensors'), framework='np') as f:
    assert f.metadata()['step'] == '6'
  variables = {}
  for name, array in arrays.items():
    *parents, leaf = name.split('.')
    node = variables
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = array
  config = json.loads((released / 'config.json').read_text())
  model = models.create_model(config_io.ml_collections.ConfigDict(
      config['model']), 'float32')
  mixtures = np.random.default_rng(1).uniform(0, 1, (4, 32, 32, 3)).astype(
      np.float32)
  digit, image = jax.jit(model.apply)(variables, mixtures)  # As it serves.
  want = Separator.restore(released)(mixtures)
  np.testing.assert_array_equal(np.asarray(digit), want[0])
  np.testing.assert_array_equal(np.asarray(image), want[1])


def test_the_model_card_has_a_hub_header_and_the_runs_scores(trained_run,
                                                             released):
  import yaml  # pylint: disable=g-import-not-at-top
  text = (released / 'README.md').read_text()
  _, header, body = text.split('---\n', 2)
  meta = yaml.safe_load(header)
  assert meta['license'] == 'apache-2.0'
  assert meta['library_name'] == 'mixae_jax'
  assert set(meta['datasets']) == {'mnist', 'cifar10'}
  results = meta['model-index'][0]['results']
  record = trained_run[2]
  got = {(r['dataset']['type'], m['type']): m['value']
         for r in results for m in r['metrics']}
  for source in ('mnist', 'cifar10'):
    for metric in ('psnr', 'ssim'):
      assert got[source, metric] == pytest.approx(record[source][metric],
                                                  abs=1e-4)
  for section in ('## Intended use', '## Limitations',
                  '## Training data and recipe', '## How to load'):
    assert section in body


def test_a_damaged_weights_file_is_refused_in_one_line(released, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  for damage in ('flip', 'truncate'):
    folder = tmp_path / damage
    shutil.copytree(released, folder)
    data = bytearray((folder / 'model.safetensors').read_bytes())
    if damage == 'flip':
      data[-3] ^= 0xFF  # In the last array's bytes.
    else:
      data = data[:len(data) // 2]
    (folder / 'model.safetensors').write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='model.safetensors is (corrupt'
                       '|not a complete mixae_jax model file)'):
      Separator.restore(folder)


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
  # No folder of the trainer in the card either.
  assert 'someone' not in (tmp_path / 'release' / 'README.md').read_text()
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
  # Every stored float is float16, so the arrays take half the bytes.
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  stored = load_file(str(half / 'model.safetensors'))
  exact = load_file(str(released / 'model.safetensors'))
  assert stored['params.ConvBlock_0.Conv_0.kernel'].dtype == np.float16
  assert {a.dtype for a in stored.values()} == {np.dtype(np.float16)}
  assert stored.keys() == exact.keys()
  assert (sum(a.nbytes for a in stored.values()) * 2
          == sum(a.nbytes for a in exact.values()))
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
  # configs/release.py's second stage is what pretrained/dual saved, read
  # as every saved config is read (the fields added since, data.sources,
  # through config_io's table): every field but the folders of the machine
  # that trained it.
  from configs import release as recipe  # pylint: disable=g-import-not-at-top
  repo = pathlib.Path(__file__).resolve().parents[1]
  saved = config_io.upgrade(ml_collections.ConfigDict(json.loads(
      (repo / 'pretrained/dual/config.json').read_text())), 'saved').to_dict()
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
