"""--mode=separate on users' files, and the failure-analysis outputs of eval."""

import json
import os
import shutil

import numpy as np
from PIL import Image
import pytest

from mixae_jax import make_mixtures
from mixae_jax.data import pipeline
from mixae_jax.errors import InputError
from mixae_jax.apps.separate import separate_files


@pytest.fixture(scope='module')
def files(trained_run, tmp_path_factory):
  config = trained_run[0]
  folder = tmp_path_factory.mktemp('images')
  ds = pipeline.load_datasets(config.data, with_train=False)
  Image.fromarray(ds.first_test.images[0]).save(folder / 'digit.png')
  Image.fromarray(ds.second_test.images[0]).save(folder / 'cat.png')
  mix = np.asarray(make_mixtures(ds.first_test.images[:2],
                                 ds.second_test.images[:2]).mixture)
  for i in range(2):
    Image.fromarray(np.round(mix[i] * 255).astype(np.uint8)).save(folder / f'mix{i}.png')
  Image.fromarray(ds.second_test.images[1]).resize((64, 64)).save(folder / 'big.png')
  Image.fromarray(ds.first_test.images[1]).save(folder / 'grey.png')
  rgba = np.zeros((32, 32, 4), np.uint8)
  rgba[..., 3] = 128
  Image.fromarray(rgba).save(folder / 'transparent.png')
  (folder / 'notes.png').write_text('not an image')
  (folder / 'empty.png').write_bytes(b'')
  return folder


def test_separates_mixture_files(trained_run, files, tmp_path):
  written = separate_files(trained_run[1], tmp_path, inputs=[
      str(files / 'mix0.png'), str(files / 'mix1.png')])
  names = sorted(p.name for p in written)
  assert names == ['mix0_digit.png', 'mix0_image.png', 'mix0_separation.png',
                   'mix1_digit.png', 'mix1_image.png', 'mix1_separation.png']
  digit = np.asarray(Image.open(tmp_path / 'mix0_digit.png'))
  assert digit.shape == (32, 32, 3) and digit.dtype == np.uint8


def test_mixes_a_digit_and_an_image_then_separates(trained_run, files, tmp_path):
  written = separate_files(trained_run[1], tmp_path, digit=str(files / 'digit.png'),
                           image=str(files / 'cat.png'))
  assert {p.name for p in written} == {'digit_cat_digit.png', 'digit_cat_image.png',
                                       'digit_cat_separation.png'}
  figure = Image.open(tmp_path / 'digit_cat_separation.png')
  assert figure.size[0] > 4 * figure.size[1]  # Five panels side by side.


def test_resize_only_when_asked(trained_run, files, tmp_path):
  with pytest.raises(InputError, match=r'big.png is 64x64; a mixture must be '
                     r'32x32: resize it first .* or pass --resize'):
    separate_files(trained_run[1], tmp_path, inputs=[str(files / 'big.png')])
  assert not list(tmp_path.iterdir())  # Refused before writing anything.
  written = separate_files(trained_run[1], tmp_path, inputs=[str(files / 'big.png')],
                           resize=True)
  assert len(written) == 3


@pytest.mark.parametrize('kwargs, message', [
    (dict(inputs=['notes.png']), 'is not an image file Pillow can read'),
    (dict(inputs=['missing.png']), 'missing.png does not exist'),
    (dict(inputs=['.']), r'is a folder, not an image file \(expected a '
     'mixture image file'),
    (dict(inputs=['empty.png']), r'empty.png is empty \(0 bytes'),
    (dict(digit='empty.png', image='cat.png'), r'empty.png is empty \(0 bytes; '
     'expected a digit image file'),
    (dict(inputs=['grey.png']), r'mode L \(1 channel\(s\)\); a mixture must be RGB'),
    (dict(inputs=['transparent.png']), 'alpha channel with transparency'),
    (dict(digit='digit.png'), '--digit and --image go together'),
    (dict(digit='digit.png', image='grey.png'), 'an image must be RGB'),
    (dict(), 'nothing to separate'),
])
def test_bad_files_get_one_line_errors(trained_run, files, tmp_path, kwargs, message):
  kwargs = {k: ([str(files / f) for f in v] if isinstance(v, list) else str(files / v))
            for k, v in kwargs.items()}
  with pytest.raises(InputError, match=message) as info:
    separate_files(trained_run[1], tmp_path, **kwargs)
  assert '\n' not in str(info.value)


def test_unreadable_input_is_named(trained_run, files, tmp_path):
  if os.geteuid() == 0:
    pytest.skip('root reads any file; run as a user to check permissions')
  locked = tmp_path / 'locked.png'
  shutil.copy(files / 'mix0.png', locked)
  locked.chmod(0)
  with pytest.raises(InputError, match='locked.png cannot be read'):
    separate_files(trained_run[1], tmp_path / 'out', inputs=[str(locked)])


def test_a_32x32_rgb_digit_is_accepted(trained_run, files, tmp_path,
                                      monkeypatch):
  from mixae_jax import Separator
  sizes = []
  for_digit_size = Separator.for_digit_size
  def spy(self, size):
    sizes.append(size)
    return for_digit_size(self, size)
  monkeypatch.setattr(Separator, 'for_digit_size', spy)
  rgb = Image.open(files / 'digit.png').resize((32, 32)).convert('RGB')
  rgb.save(tmp_path / 'd32.png')
  written = separate_files(trained_run[1], tmp_path / 'out',
                           digit=str(tmp_path / 'd32.png'), image=str(files / 'cat.png'))
  assert len(written) == 3
  # Separated without the model's 28x28-upsampling assumption.
  assert sizes == [32]


def test_eval_writes_per_class_scores_and_worst_pairs(trained_run):
  config, workdir, record = trained_run
  per_class = json.loads((workdir / 'eval' / 'per_class.json').read_text())
  for grouping in ('by_cifar_class', 'by_digit'):
    groups = per_class[grouping]
    assert sum(g['count'] for g in groups.values()) == config.eval.num_pairs
    # Count-weighted class means give back the overall mean.
    for source in ('mnist', 'cifar10'):
      overall = sum(g['count'] * g[source]['psnr'] for g in groups.values())
      assert overall / config.eval.num_pairs == pytest.approx(
          record[source]['psnr'], rel=1e-5)
  assert set(per_class['by_cifar_class']) <= set(pipeline.CIFAR10_CLASSES)
  for name in ('per_class.png', 'worst.png'):
    assert Image.open(workdir / 'eval' / name).size[0] > 300
  worst = Image.open(workdir / 'eval' / 'worst.png')
  samples = Image.open(workdir / 'eval' / 'samples.png')
  assert worst.size[1] > samples.size[1]  # 16 titled rows against 10.
