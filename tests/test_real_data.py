"""The real MNIST and CIFAR-10 (JPEG copy) from ../shared/data, when present.

The files are written once by ../shared/data/prepare.py into a cache folder
(MIXAE_DATA_DIR when it is set, else .cache/data in the repo).
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_config
from mixae_jax import evaluate, train
from mixae_jax.data import local_files, pipeline

PREPARE = REPO.parent / 'shared' / 'data' / 'prepare.py'


@pytest.fixture(scope='module')
def real_data_dir() -> pathlib.Path:
  folder = pathlib.Path(os.environ.get('MIXAE_DATA_DIR') or REPO / '.cache' / 'data')
  if local_files.missing_files(folder):
    if not PREPARE.is_file():
      pytest.skip(f'real data absent: {folder} is incomplete and {PREPARE} '
                  'does not exist to write it')
    subprocess.run([sys.executable, str(PREPARE), str(folder)], check=True)
  return folder


def test_real_datasets_have_the_official_sizes_and_labels(real_data_dir):
  config = tiny_config(real_data_dir)
  ds = pipeline.load_datasets(config.data)
  assert ds.first_train.images.shape == (60_000, 28, 28)
  assert ds.first_test.images.shape == (10_000, 28, 28)
  assert ds.second_train.images.shape == (50_000, 32, 32, 3)
  assert ds.second_test.images.shape == (10_000, 32, 32, 3)
  np.testing.assert_array_equal(np.bincount(ds.second_test.labels), [1000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.second_train.labels), [5000] * 10)
  assert np.bincount(ds.first_test.labels).tolist()[:3] == [980, 1135, 1032]
  # MNIST digits are white on black: mostly zero pixels.
  assert 0.75 < float(np.mean(ds.first_test.images == 0)) < 0.85


def test_short_training_on_real_data(real_data_dir, tmp_path):
  config = tiny_config(real_data_dir, num_train_steps=2, **{
      'eval.num_pairs': 64, 'eval.every_steps': 0})
  record = train.train_and_evaluate(config, tmp_path)
  # The mixture-as-answer baseline on real data sits near 12 dB (digit)
  # and 13 dB (CIFAR); far outside means the preprocessing is off.
  assert 9 < record['baseline']['mnist']['psnr'] < 15
  assert 9 < record['baseline']['cifar10']['psnr'] < 16
  assert np.isfinite(record['mnist']['psnr'])


PRETRAINED = REPO / 'pretrained' / 'dual'


def test_released_model_restores_from_the_repo_without_data():
  from mixae_jax import Separator
  size = sum(f.stat().st_size for f in PRETRAINED.rglob('*') if f.is_file())
  assert size <= 10 * 2**20, f'{PRETRAINED} is {size / 2**20:.1f} MiB'
  separator = Separator.restore(PRETRAINED)
  # Stored in float16: at most about 2 bytes per parameter on disk.
  count = sum(x.size for x in jax.tree.leaves(separator.state.params))
  assert size < 2.2 * count, f'{size} bytes for {count} parameters'
  mixtures = np.full((3, 32, 32, 3), 0.4, np.float32)
  digits, images = separator(mixtures)
  assert digits.shape == images.shape == (3, 32, 32, 3)
  assert np.isfinite(digits).all() and np.isfinite(images).all()


@pytest.mark.parametrize('name, dataset, size, channels', [
    ('mnist_mnist', 'mnist', 28, 1), ('cifar_cifar', 'cifar10', 32, 3)])
def test_each_published_pairs_release_restores_from_its_folder_alone(
    name, dataset, size, channels):
  from mixae_jax import Separator
  folder = REPO / 'pretrained' / name
  total = sum(f.stat().st_size for f in folder.rglob('*') if f.is_file())
  assert total <= 5 * 2**20, f'{folder} is {total / 2**20:.1f} MiB'
  separator = Separator.restore(folder)
  assert separator.pair.names == (dataset, dataset)
  shape = (2, size, size, channels)
  first, second = separator(np.full(shape, 0.3, np.float32))
  assert first.shape == second.shape == shape
  # The consistent head: the two estimates average to the mixture.
  np.testing.assert_allclose((first + second) / 2, 0.3, atol=1e-6)
  published = json.loads((folder / 'eval_metrics.json').read_text())
  assert (published['num_pairs'], published['pairing_seed']) == (10_000, 100)
  psnr = (published[f'{dataset}_1']['psnr']
          + published[f'{dataset}_2']['psnr']) / 2
  assert f'{psnr:.2f} dB' in (REPO / 'README.md').read_text()


def test_released_model_reproduces_its_published_scores(real_data_dir):
  """--mode=eval's scores of pretrained/dual are eval_metrics.json's and the
  README's (its pictures are test_train.py's: the same code on a tiny run)."""
  from mixae_jax import config_io, inference, models, sharding, tuning
  from mixae_jax.data import pipeline
  config = config_io.load(PRETRAINED)
  config.data.dir = str(real_data_dir)
  # What evaluate_checkpoint computes, without drawing its figures.
  model = models.create_model(config.model, config.dtype,
                              **tuning.layer_forms())
  state, step = inference.restore_state(config, PRETRAINED, model=model)
  mesh = sharding.make_mesh()
  eval_set = pipeline.make_eval_set(
      pipeline.load_datasets(config.data, with_train=False),
      config.eval.num_pairs, config.eval.pairing_seed)
  record = evaluate.summary(evaluate.per_image_metrics(
      sharding.put(state, sharding.replicated(mesh)), eval_set,
      config.eval.batch_size, sharding=sharding.data_sharding(mesh)),
      step, config.eval.pairing_seed)
  published = json.loads((PRETRAINED / 'eval_metrics.json').read_text())
  assert (record['step'], record['num_pairs']) == (published['step'], 10_000)
  for source in ('mnist', 'cifar10'):
    for metric in ('psnr', 'ssim', 'mse'):
      # Equal on the machine that published them; another CPU's float
      # rounding may move the last digits.
      assert record[source][metric] == pytest.approx(
          published[source][metric], rel=1e-5, abs=1e-6), (source, metric)
  readme = (REPO / 'README.md').read_text()
  for source in ('mnist', 'cifar10'):
    m = published[source]
    assert f'{m["psnr"]:.2f} dB' in readme and f'{m["ssim"]:.4f}' in readme, source
