"""Any two sources: MNIST twice at 28x28 grey, CIFAR-10 twice, the pair's
layout, permutation-invariant loss and scores, and the one-line errors."""

import importlib.util
import json
import pathlib
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from PIL import Image

from conftest import tiny_config
from mixae_jax import Separator, config_io, evaluate, losses, metrics, models
from mixae_jax import plots
from mixae_jax import train, train_state
from mixae_jax.apps import demo_session, export, separate
from mixae_jax.data import pipeline, preprocessing, sources
from mixae_jax.errors import ConfigError, DataError, InputError


def test_the_pair_decides_layout_roles_and_labels():
  default = sources.Pair.from_names(('mnist', 'cifar10'))
  assert default == sources.DEFAULT
  assert default.layout.shape == (32, 32, 3) and not default.permutation_invariant
  assert default.labels == ('mnist', 'cifar10')
  mnist = sources.Pair.from_names(['mnist', 'mnist'])  # As config.json has it.
  assert mnist.layout.shape == (28, 28, 1) and mnist.permutation_invariant
  assert mnist.labels == ('mnist_1', 'mnist_2')
  assert mnist.datasets == (sources.DATASETS['mnist'],)
  assert sources.Pair.from_names(('cifar10', 'cifar10')).layout.shape == (
      32, 32, 3)
  assert sources.Pair.from_names(('cifar10', 'mnist')).layout.shape == (
      32, 32, 3)


def test_mixtures_take_the_pairs_layout():
  rng = np.random.default_rng(0)
  a, b = (rng.integers(0, 256, (4, 28, 28), np.uint8) for _ in range(2))
  mix = preprocessing.make_mixtures(a, b, sources.Pair.from_names(
      ('mnist', 'mnist')))
  assert mix.mixture.shape == (4, 28, 28, 1)
  np.testing.assert_allclose(mix.first[..., 0], a / 255, atol=1e-7)
  np.testing.assert_allclose(mix.mixture, (mix.first + mix.second) / 2)
  # The first source of (cifar10, mnist) is the colour image; the digit is
  # upsampled and repeated as in the default pair.
  c = rng.integers(0, 256, (4, 32, 32, 3), np.uint8)
  swapped = preprocessing.make_mixtures(c, a, sources.Pair.from_names(
      ('cifar10', 'mnist')))
  default = preprocessing.make_mixtures(a, c)
  np.testing.assert_array_equal(swapped.first, default.second)
  np.testing.assert_array_equal(swapped.second, default.first)
  with pytest.raises(ValueError, match=r'mnist images must be \[N, 28, 28, 1\]'):
    preprocessing.make_mixtures(c, c, sources.Pair.from_names(
        ('mnist', 'mnist')))


def test_one_dataset_twice_is_paired_as_the_papers_pair_it():
  first, second = pipeline.pairing(50, 100, 50, 50, one_dataset=True)
  np.testing.assert_array_equal(first, np.arange(50))
  np.testing.assert_array_equal(
      second, np.random.default_rng(100).permutation(50))


def test_the_unet_pads_a_28_pixel_side_inside_and_crops_back():
  config = ml_collections.ConfigDict(dict(
      name='unet', widths=(4, 8, 8, 8), digit_channels=1, head='consistent',
      digit_resized_from=0, activation='relu', decoders='twin'))
  model = models.create_model(config, 'float32')
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  first, second = model.apply(model.init(jax.random.key(1), x), x)
  assert first.shape == second.shape == (2, 28, 28, 1)
  # The consistent head holds for any two sources: the estimates average to
  # the mixture (inside [0, 1], where clipping cannot bite).
  inner = (x > 0.01) & (x < 0.99)
  np.testing.assert_allclose(((first + second) / 2)[inner], x[inner], atol=1e-6)


def test_permutation_invariant_loss_takes_each_pair_in_its_better_order():
  rng = np.random.default_rng(0)
  x, y = (jnp.asarray(rng.uniform(size=(3, 8, 8, 1)), jnp.float32)
          for _ in range(2))
  noise = 0.01 * jnp.asarray(rng.normal(size=(3, 8, 8, 1)), jnp.float32)
  # Pair 1's outputs come out swapped; the others in order.
  swap = jnp.asarray([False, True, False])[:, None, None, None]
  a, b = jnp.where(swap, y, x) + noise, jnp.where(swap, x, y) - noise
  aligned = losses.align(a, b, x, y)
  np.testing.assert_allclose(aligned[0], x + jnp.where(swap, -noise, noise))
  settings = losses.LossSettings('separate', 'mse', 1.0, 1.0, 0.0, True)
  fixed = losses.LossSettings('separate', 'mse', 1.0, 1.0, 0.0, False)
  invariant, _ = losses.separation_loss(a, b, x, y, settings)
  assert float(invariant) == pytest.approx(2 * float(jnp.mean(noise ** 2)))
  assert float(losses.separation_loss(a, b, x, y, fixed)[0]) > 100 * float(
      invariant)
  # Its gradient flows through the chosen order.
  grad = jax.grad(lambda a: losses.separation_loss(a, b, x, y, settings)[0])(a)
  np.testing.assert_allclose(grad[1], 2 * (a[1] - y[1]) / a.size, rtol=1e-5)


def test_mnist_twice_trains_evaluates_and_separates_at_28_pixels_grey(
    data_dir, tmp_path):
  config = tiny_config(data_dir, **{
      'data.sources': ('mnist', 'mnist'), 'model.digit_resized_from': 0,
      'num_train_steps': 2, 'eval.every_steps': 0,
      'checkpoint.every_steps': 2, 'eval.pairing_seed': 100})
  workdir = tmp_path / 'run'
  record = train.train_and_evaluate(config, workdir)
  labels = ['mnist_1', 'mnist_2']
  assert metrics.source_labels(record) == labels
  assert record['num_pairs'] == 40 and np.isfinite(record['mnist_1']['psnr'])
  # 40 of seed 100's pairs of 100 test digits hold digits paired with
  # themselves: the baseline's mean PSNR leaves their infinite values out.
  first, second = pipeline.pairing(40, 100, 100, 100, one_dataset=True)
  assert (first == second).any()
  assert np.isfinite(record['baseline']['mnist_1']['psnr'])
  per_class = json.loads((workdir / 'eval' / 'per_class.json').read_text())
  assert set(per_class) == {'by_mnist_1_class', 'by_mnist_2_class'}
  # The run folder alone says what it separates (config.json): the papers
  # benchmark's row, restored from it, is the mean of the eval's two
  # sources' PSNR on the same pairs, in the better order (the exact
  # eval-reproduces-training check is test_train.py's).
  assert tuple(config_io.load(workdir).data.sources) == ('mnist', 'mnist')
  from benchmarks import papers  # pylint: disable=g-import-not-at-top
  row = papers.model_score(workdir, num_pairs=40)
  assert row['psnr'] == pytest.approx(
      (record['mnist_1']['psnr'] + record['mnist_2']['psnr']) / 2, rel=1e-5)
  assert (row['pairs'], row['steps']) == (40, 2)
  # Separator and --mode=separate take the run's grey 28x28 layout, and
  # score in the better order, as the eval does.
  separator = Separator.restore(workdir)
  datasets = pipeline.load_datasets(config.data, with_train=False)
  eval_set = pipeline.make_eval_set(datasets, 4, 100)
  result = separator.mix_and_separate(eval_set.first, eval_set.second)
  assert result.digit.shape == result.mixture.shape == (4, 28, 28, 1)
  best, _ = metrics.best_ordering((result.digit, result.image),
                                  (result.true_digit, result.true_image))
  np.testing.assert_allclose(
      (result.scores['digit']['psnr'] + result.scores['image']['psnr']) / 2,
      best, rtol=1e-5)
  with pytest.raises(InputError, match=re.escape(
      'expected float32 [N, 28, 28, 1] mixtures with values in [0, 1] '
      '(resize to 28x28 grey first)')):
    separator(np.zeros((2, 32, 32, 3), np.float32))
  Image.fromarray(np.asarray(plots.to_uint8(result.mixture[0]))[..., 0]).save(
      tmp_path / 'mix.png')
  written = separate.separate_files(workdir, tmp_path / 'out',
                                    inputs=[str(tmp_path / 'mix.png')])
  assert written[0].name == 'mix_mnist_1.png'
  with Image.open(written[0]) as first:
    assert first.size == (28, 28) and first.mode == 'L'
  # Exported, it is a model folder of its pair: the card says so, and the
  # folder alone restores into the same layout.
  export.export(workdir, tmp_path / 'model')
  card = (tmp_path / 'model' / 'README.md').read_text()
  assert 'the pixel-wise mean of two MNIST images (28×28' in card
  assert 'type: mnist\n' in card and 'cifar10' not in card
  assert Separator.restore(tmp_path / 'model').pair == separator.pair
  # The demo page offers the pair's own two sources: MNIST test digits (by
  # index, by class), drawn or uploaded digits, scored in the better order.
  model = demo_session.DemoModel.restore(workdir)
  assert [(slot.role, slot.ways) for slot in model.slots] == [
      (role, ('random', 'by index', 'by class', 'draw', 'upload'))
      for role in labels]
  first, about_first = model.source('digit', demo_session.BY_INDEX, index=5)
  second, about_second = model.source('image', demo_session.BY_CLASS,
                                      label='3')
  np.testing.assert_array_equal(first, datasets.first_test.images[5])
  assert about_first.startswith('MNIST test digit #5 (')
  assert about_second.endswith('(3)') and second.shape == (28, 28)
  shown = model.mix_and_separate(first, second)
  want = separator.mix_and_separate(first[None], second[None])
  assert shown.digit.shape == (28, 28, 1)
  np.testing.assert_allclose(shown.scores['image']['psnr'],
                             want.scores['image']['psnr'][0], rtol=1e-5)
  Image.fromarray(np.full((40, 30), 200, np.uint8)).save(tmp_path / 'big.png')
  with pytest.raises(InputError, match=re.escape(
      "the uploaded mixture is 30x40; a mixture must be 28x28: resize it "
      "first (e.g. `convert the uploaded mixture -resize 28x28! out.png`) or "
      "tick 'resize to 28x28'")):
    model.separate_upload(str(tmp_path / 'big.png'))
  assert model.separate_upload(str(tmp_path / 'big.png'),
                               resize=True).digit.shape == (28, 28, 1)


def test_cifar_twice_takes_colour_sources_in_either_order(data_dir):
  config = tiny_config(data_dir, **{
      'data.sources': ('cifar10', 'cifar10'), 'model.digit_channels': 3,
      'model.digit_resized_from': 0})
  config_io.validate(config)
  state = train_state.create_train_state(config)
  datasets = pipeline.load_datasets(config.data, with_train=False)
  eval_set = pipeline.make_eval_set(datasets, 8, 100)
  assert eval_set.first.shape == (8, 32, 32, 3)
  np.testing.assert_array_equal(eval_set.second_index,
                                np.random.default_rng(100).permutation(100)[:8])
  scores = jax.eval_shape(evaluate.eval_step, state, eval_set.first,
                          eval_set.second, eval_set.pair)
  assert set(scores) == {'cifar10_1', 'cifar10_2', 'baseline_cifar10_1',
                         'baseline_cifar10_2'}
  assert losses.LossSettings.from_config(config).permutation_invariant


@pytest.mark.parametrize('overrides, message', [
    ({'data.sources': ('mnist', 'svhn')}, re.escape(
        "data.sources names 'svhn', which is unknown; use two of ('mnist', "
        "'cifar10') or folders of images ('folder:PATH'), the same one twice "
        'included')),
    ({'data.sources': ('mnist', 'folder:')}, re.escape(
        "data.sources names 'folder:', a folder source without a folder; "
        "write 'folder:PATH'")),
    ({'data.sources': ('mnist',)}, 'must name two sources'),
    ({'data.sources': ('mnist', 'mnist')}, 'model.digit_resized_from=28: in '
     'mnist\\+mnist the first source is mnist, at its own 28x28, not '
     'upsampled; use 0'),
    ({'data.sources': ('cifar10', 'cifar10'), 'model.digit_resized_from': 0},
     'model.digit_channels=1 predicts a grey first source, but cifar10 is in '
     'colour; use 3'),
    ({'data.sources': ('cifar10', 'mnist'), 'model.digit_channels': 3},
     'model.digit_resized_from=28: in cifar10\\+mnist the first source is '
     'cifar10, at its own 32x32, not upsampled; use 0'),
    ({'data.sources': ('mnist', 'mnist'), 'model.digit_resized_from': 0,
      'model.name': 'seed004', 'optimizer.name': 'adam'},
     "model.name='seed004' separates mnist\\+cifar10 only"),
])
def test_a_pair_the_config_cannot_serve_is_one_clear_error(data_dir, overrides,
                                                           message):
  config = tiny_config(data_dir, **overrides)
  with pytest.raises(ConfigError, match=message):
    config_io.validate(config)


def write_image_folders(root: pathlib.Path, count: int = 24
                        ) -> tuple[pathlib.Path, pathlib.Path]:
  """Two folders of generated images of two kinds, in a user's formats:
  smooth colour textures (PNG, 40x40) and dark shapes on white (JPEG,
  32x32, in train/ and test/)."""
  rng = np.random.default_rng(0)
  textures, logos = root / 'textures', root / 'logos'
  textures.mkdir(parents=True)
  for k in range(count):
    ramp = np.linspace(0, 1, 40)[:, None, None]
    colour = rng.uniform(0, 1, 3)[None, None] * ramp + rng.uniform(0, 0.5, 3)
    Image.fromarray((np.clip(colour, 0, 1) * 255).astype(np.uint8).repeat(
        40, axis=1)).save(textures / f'{k:03d}.png')
  for split, n in (('train', count), ('test', count // 4)):
    (logos / split).mkdir(parents=True)
    for k in range(n):
      logo = np.full((32, 32, 3), 255, np.uint8)
      r, c = rng.integers(2, 18, size=2)
      logo[r:r + 12, c:c + 12] = rng.integers(0, 120, 3)
      Image.fromarray(logo).save(logos / split / f'{k:03d}.jpg')
  return textures, logos


def test_a_users_two_folders_train_evaluate_and_separate(data_dir, tmp_path):
  textures, logos = write_image_folders(tmp_path / 'images')
  config = tiny_config(data_dir, **{
      'data.sources': (f'folder:{textures}', f'folder:{logos}'),
      'model.digit_channels': 3, 'model.digit_resized_from': 0,
      'num_train_steps': 2, 'eval.every_steps': 0,
      'checkpoint.every_steps': 2, 'eval.num_pairs': 3, 'eval.batch_size': 4,
      'eval.periodic_num_pairs': 3})
  datasets = pipeline.load_datasets(config.data)
  # 24 textures, every 10th held out; the logos' own train/ and test/.
  assert datasets.first_train.images.shape == (21, 32, 32, 3)
  assert datasets.first_test.images.shape == (3, 32, 32, 3)
  assert datasets.second_test.images.shape == (6, 32, 32, 3)
  workdir = tmp_path / 'run'
  record = train.train_and_evaluate(config, workdir)
  assert metrics.source_labels(record) == ['textures', 'logos']
  assert record['num_pairs'] == 3  # The smaller test split.
  Image.fromarray(datasets.first_test.images[0] // 2
                  + datasets.second_test.images[0] // 2).save(
                      tmp_path / 'mix.png')
  written = separate.separate_files(workdir, tmp_path / 'out',
                                    inputs=[str(tmp_path / 'mix.png')])
  assert [p.name for p in written] == [
      'mix_textures.png', 'mix_logos.png', 'mix_separation.png']
  # The demo page: test images at random or by index, uploads resized;
  # no classes to choose from, nothing to draw.
  model = demo_session.DemoModel.restore(workdir)
  assert [(slot.role, slot.ways) for slot in model.slots] == [
      (role, ('random', 'by index', 'upload')) for role in ('textures', 'logos')]
  texture, about = model.source('digit', demo_session.BY_INDEX, index=2)
  assert about == 'textures test image #2'
  np.testing.assert_array_equal(texture, datasets.first_test.images[2])
  logo, about = model.source('image', demo_session.UPLOAD,
                             upload=str(tmp_path / 'mix.png'))
  assert logo.shape == (32, 32, 3) and about == 'mix.png'
  assert set(model.mix_and_separate(texture, logo).scores) == {'digit',
                                                               'image'}
  with pytest.raises(InputError, match=re.escape(
      "'by class' cannot choose the logos; choose one of random, by index, "
      'upload')):
    model.source('image', demo_session.BY_CLASS, label='0')
  if importlib.util.find_spec('gradio'):  # The page (the demo extra) too.
    from mixae_jax.apps import demo  # pylint: disable=g-import-not-at-top
    page = demo.build_page(model)
    radios = {block.elem_id: [choice for _, choice in block.choices]
              for block in page.blocks.values()
              if block.elem_id in ('digit-source', 'image-source')}
    assert radios == {'digit-source': ['random', 'by index', 'upload'],
                      'image-source': ['random', 'by index', 'upload']}
    labels = {block.label for block in page.blocks.values()
              if getattr(block, 'label', None)}
    assert {'recovered textures', 'true logos', 'Textures',
            'mixture (32x32 RGB)'} <= labels


def test_bad_image_folders_are_one_line_each(data_dir, tmp_path):
  textures, _ = write_image_folders(tmp_path / 'images', count=8)
  empty = tmp_path / 'empty'
  empty.mkdir()
  (tmp_path / 'notes').mkdir()
  for k in range(12):
    (tmp_path / 'notes' / f'{k}.png').write_text('not a picture')
  cases = {
      str(tmp_path / 'nowhere'): 'does not exist; name a folder of PNG or '
                                 "JPEG images ('folder:PATH')",
      str(empty): 'holds no PNG or JPEG images',
      str(tmp_path / 'notes'): 'is not an image Pillow can read',
  }
  for folder, message in cases.items():
    config = tiny_config(data_dir, **{
        'data.sources': (f'folder:{folder}', f'folder:{textures}'),
        'model.digit_channels': 3, 'model.digit_resized_from': 0})
    with pytest.raises(DataError, match=re.escape(message)):
      pipeline.load_datasets(config.data)
  config = tiny_config(data_dir, **{
      'data.sources': (f'folder:{textures}', 'cifar10'),
      'model.digit_channels': 3, 'model.digit_resized_from': 0,
      'data.test_fraction': 0.05})
  with pytest.raises(DataError, match=re.escape(
      'has 1 test image(s); each split needs at least 2: add images, or '
      'raise data.test_fraction')):
    pipeline.load_datasets(config.data)
