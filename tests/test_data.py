"""Local file readers (good and corrupt files), source selection, tfds, pairing."""

import gzip
import importlib.util

import ml_collections
import numpy as np
import pytest

from conftest import write_cifar_batch, write_dataset, write_idx
from mixae_jax.data import local_files, pipeline
from mixae_jax.errors import ConfigError, DataError


def _data_config(**kw) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({'sources': ('mnist', 'cifar10'),
                                   'image_size': 32, 'test_fraction': 0.1,
                                   'source': 'auto', 'dir': '', 'tfds_dir': '',
                                   **kw})


def test_reads_a_complete_folder(data_dir):
  ds = pipeline.load_datasets(_data_config(dir=str(data_dir)))
  assert ds.first_train.images.shape == (200, 28, 28)
  assert ds.first_test.images.shape == (100, 28, 28)
  assert ds.second_train.images.shape == (200, 32, 32, 3)
  assert ds.second_test.images.shape == (100, 32, 32, 3)
  for split in ds[:4]:
    assert split.images.dtype == np.uint8
    assert len(split.labels) == len(split.images)
    assert split.labels.min() >= 0 and split.labels.max() <= 9


def test_cifar_records_are_decoded_plane_by_plane(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), np.uint8)
  labels = np.array([7, 0, 9])
  write_cifar_batch(tmp_path / 'b.bin', images, labels)
  raw = np.fromfile(tmp_path / 'b.bin', np.uint8)
  # Record layout by hand: byte 0 label, then 1024 R, 1024 G, 1024 B.
  assert raw[0] == 7 and raw[1] == images[0, 0, 0, 0]
  assert raw[1 + 1024] == images[0, 0, 0, 1] and raw[1 + 2048 + 33] == images[0, 1, 1, 2]
  split = local_files.read_cifar_batch(tmp_path / 'b.bin')
  np.testing.assert_array_equal(split.images, images)
  np.testing.assert_array_equal(split.labels, labels)


def test_idx_round_trip(tmp_path):
  x = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28).astype(np.uint8)
  write_idx(tmp_path / 'x.gz', x, 2051)
  np.testing.assert_array_equal(local_files.read_idx(tmp_path / 'x.gz', magic=2051), x)


def _gz(path, payload: bytes):
  with gzip.open(path, 'wb') as f:
    f.write(payload)


@pytest.mark.parametrize('corruption, message', [
    ('wrong_magic', 'magic number 2049, expected 2051'),
    ('truncated_payload', 'truncated or padded'),
    ('truncated_gzip', 'not a valid gzip file'),
    ('not_gzip', 'not a valid gzip file'),
    ('short_header', 'shorter than its 16-byte IDX header'),
    ('wrong_size', r'declares shape \(5, 27, 28\)'),
])
def test_corrupt_idx_files_are_named(tmp_path, corruption, message):
  path = tmp_path / 'train-images-idx3-ubyte.gz'
  good = np.asarray([2051, 5, 28, 28], '>u4').tobytes() + bytes(5 * 784)
  if corruption == 'wrong_magic':
    _gz(path, np.asarray([2049, 5, 28, 28], '>u4').tobytes() + bytes(5 * 784))
  elif corruption == 'truncated_payload':
    _gz(path, good[:-100])
  elif corruption == 'truncated_gzip':
    _gz(path, good)
    path.write_bytes(path.read_bytes()[:-30])
  elif corruption == 'not_gzip':
    path.write_text('<html>404 not found</html>')
  elif corruption == 'short_header':
    _gz(path, good[:10])
  elif corruption == 'wrong_size':
    _gz(path, np.asarray([2051, 5, 27, 28], '>u4').tobytes() + bytes(5 * 756))
  with pytest.raises(DataError, match=message) as info:
    local_files.read_idx(path, magic=2051)
  assert str(path) in str(info.value)


def test_labels_out_of_range_and_count_mismatch(tmp_path):
  root = write_dataset(tmp_path / 'd', n_train=10, n_test=10)
  labels = root / 'mnist' / 't10k-labels-idx1-ubyte.gz'
  write_idx(labels, np.full(10, 12, np.uint8), 2049)
  with pytest.raises(DataError, match='label 12; labels must be in 0..9'):
    local_files.read_mnist(root, 'test')
  write_idx(labels, np.zeros(9, np.uint8), 2049)
  with pytest.raises(DataError, match='10 images but .* 9 labels'):
    local_files.read_mnist(root, 'test')
  batch = root / local_files.CIFAR_DIR / 'test_batch.bin'
  write_cifar_batch(batch, np.zeros((2, 32, 32, 3), np.uint8), np.array([3, 10]))
  with pytest.raises(DataError, match=f'{batch}.*label 10'):
    local_files.read_cifar_batch(batch)


def test_cifar_batch_of_the_wrong_size(tmp_path):
  path = tmp_path / 'data_batch_1.bin'
  path.write_bytes(bytes(3073 * 4 - 7))
  with pytest.raises(DataError, match='not a whole number of 3073-byte records'):
    local_files.read_cifar_batch(path)


def test_missing_folder_and_missing_files():
  with pytest.raises(DataError, match='does not exist'):
    pipeline.resolve_source(_data_config(source='local', dir='/nonexistent'))
  with pytest.raises(ConfigError, match="data.source='s3' is unknown"):
    pipeline.resolve_source(_data_config(source='s3'))


def test_incomplete_folder_names_a_missing_file(tmp_path):
  root = write_dataset(tmp_path / 'd', n_train=10, n_test=10)
  (root / local_files.CIFAR_DIR / 'data_batch_3.bin').unlink()
  with pytest.raises(DataError, match='data_batch_3.bin'):
    pipeline.resolve_source(_data_config(source='local', dir=str(root)))
  # auto falls through to tfds when the folder is incomplete.
  assert pipeline.resolve_source(_data_config(dir=str(root))) == 'tfds'
  assert pipeline.resolve_source(_data_config(dir=str(tmp_path / 'd'))) == 'tfds'


def test_offline_without_data_fails_fast(tmp_path, monkeypatch):
  if importlib.util.find_spec('tensorflow') is not None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'tensorflow' else real(name, *a))
  config = _data_config(dir=str(tmp_path / 'none'), tfds_dir=str(tmp_path / 'tfds'))
  # tfds alone would retry its download for minutes; this fails at once,
  # naming both the folder that was passed over and what tfds lacks.
  with pytest.raises(DataError, match=r'data folder .*none does not exist, '
                     r'and no data: .*prepare.py') as info:
    pipeline.load_datasets(config)
  assert '\n' not in str(info.value)


def test_a_data_dir_that_is_a_file_is_named(tmp_path):
  (tmp_path / 'mnist.zip').write_bytes(b'PK')
  with pytest.raises(DataError, match=r'data.dir .*mnist.zip is a file, not a '
                     'folder; .*prepare.py'):
    pipeline.resolve_source(_data_config(source='local',
                                         dir=str(tmp_path / 'mnist.zip')))


def test_tfds_source_reads_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=12):
    ds = pipeline.load_datasets(_data_config(source='tfds'))
  assert ds.first_train.images.shape == (12, 28, 28)
  assert ds.second_test.images.shape == (12, 32, 32, 3)
  assert ds.first_test.images.dtype == np.uint8
  assert ds.second_train.labels.dtype == np.int32


def test_eval_pairing_is_fixed_by_seed_and_documented():
  a = pipeline.pairing(50, 3, 100, 80)
  b = pipeline.pairing(50, 3, 100, 80)
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  rng = np.random.default_rng(3)
  np.testing.assert_array_equal(a[0], rng.permutation(100)[:50])
  np.testing.assert_array_equal(a[1], rng.permutation(80)[:50])
  assert len(set(a[0])) == 50 and len(set(a[1])) == 50  # No image twice.
  c = pipeline.pairing(50, 4, 100, 80)
  assert not np.array_equal(a[0], c[0])
  with pytest.raises(ConfigError, match='eval.num_pairs=81 must be in 1..80'):
    pipeline.pairing(81, 0, 100, 80)


def test_sample_batch_draws_fresh_pairs_from_the_pool(data_dir):
  import jax
  ds = pipeline.load_datasets(_data_config(dir=str(data_dir)))
  pool = pipeline.make_train_pool(ds)
  a = pipeline.sample_batch(pool, jax.random.key(0), 16)
  b = pipeline.sample_batch(pool, jax.random.key(1), 16)
  assert a.mixture.shape == (16, 32, 32, 3)
  assert not np.allclose(a.mixture, b.mixture)
  np.testing.assert_allclose(a.mixture, (a.first + a.second) / 2, atol=1e-7)
