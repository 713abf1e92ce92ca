"""The public Python API: Separator.restore(...)(mixtures), make_mixtures."""

import numpy as np
import pytest

from mixae_jax import Separator, evaluate, make_mixtures
from mixae_jax.data import pipeline
from mixae_jax.errors import CheckpointError, InputError


@pytest.fixture(scope='module')
def separator(trained_run):
  return Separator.restore(trained_run[1], batch_size=16)


def _eval_mixtures(config, n):
  ds = pipeline.load_datasets(config.data, with_train=False)
  eval_set = pipeline.make_eval_set(ds, n, config.eval.pairing_seed)
  return eval_set, np.asarray(make_mixtures(eval_set.first, eval_set.second).mixture)


def test_separates_and_batches_internally(separator, trained_run):
  config = trained_run[0]
  eval_set, mixtures = _eval_mixtures(config, 40)  # 40 = 16 + 16 + 8 (padded).
  digits, images = separator(mixtures)
  assert digits.shape == images.shape == (40, 32, 32, 3)
  assert digits.dtype == images.dtype == np.float32
  assert separator.step == 6
  # The same numbers the evaluation saw for these pairs.
  samples = evaluate.predict_samples(separator.state, eval_set, np.arange(40))
  np.testing.assert_allclose(digits, samples['digit_pred'], atol=1e-6)
  np.testing.assert_allclose(images, samples['image_pred'], atol=1e-6)
  one_digit, one_image = separator(mixtures[3])
  np.testing.assert_allclose(one_digit, digits[3], atol=1e-6)
  assert one_image.shape == (32, 32, 3)


def test_mix_and_separate_uses_the_shared_preprocessing(separator, trained_run):
  eval_set, mixtures = _eval_mixtures(trained_run[0], 4)
  result = separator.mix_and_separate(eval_set.first, eval_set.second)
  np.testing.assert_array_equal(result.mixture, mixtures)
  np.testing.assert_allclose(result.digit, separator(mixtures)[0], atol=1e-6)
  # Scored as the eval scores: the same per-image figures.
  per_image = evaluate.per_image_metrics(separator.state, eval_set, 4)
  for source, name in (('digit', 'mnist'), ('image', 'cifar10')):
    for metric in ('psnr', 'ssim'):
      np.testing.assert_allclose(result.scores[source][metric],
                                 per_image[name][metric], rtol=1e-5)


def test_a_32x32_digit_is_separated_without_the_upsampling_prior(separator):
  assert separator.config.model.digit_resized_from == 28  # configs/dual.py's.
  rng = np.random.default_rng(0)
  digits = rng.integers(0, 256, (4, 32, 32), np.uint8)
  images = rng.integers(0, 256, (4, 32, 32, 3), np.uint8)
  result = separator.mix_and_separate(digits, images)
  mixture, separated = result.mixture, result.digit
  plain = separator.for_digit_size(32)
  assert plain.config.model.digit_resized_from == 0
  np.testing.assert_allclose(separated, plain(mixture)[0], atol=1e-6)
  # The prior changes the answer, and stays on for the digits it fits.
  assert np.abs(separator(mixture)[0] - separated).max() > 1e-4
  assert separator.for_digit_size(28) is separator
  assert separator.config.model.digit_resized_from == 28


@pytest.mark.parametrize('bad, message', [
    (np.zeros((2, 28, 28, 3), np.float32), r'shape \(2, 28, 28, 3\); expected'),
    (np.zeros((2, 32, 32, 1), np.float32), r'shape \(2, 32, 32, 1\)'),
    (np.zeros((2, 32, 32, 3), np.uint8), 'dtype uint8; expected'),
    (np.full((2, 32, 32, 3), np.nan, np.float32), 'NaN or infinite'),
    (np.full((2, 32, 32, 3), 2.0, np.float32), r'span \[2, 2\]'),
    (np.full((2, 32, 32, 3), -0.5, np.float32), r'span \[-0.5, -0.5\]'),
    ([[0.5]], 'must be a numpy array, got list'),
])
def test_bad_input_is_rejected_with_a_clear_error(separator, bad, message):
  with pytest.raises(InputError, match=message):
    separator(bad)


def test_restore_needs_a_run_folder(tmp_path):
  with pytest.raises(CheckpointError, match='not a mixae_jax run folder'):
    Separator.restore(tmp_path)
