"""The shared preprocessing against hand-computed values."""

import jax
import numpy as np
from PIL import Image
import pytest

from mixae_jax import make_mixtures
from mixae_jax.data import preprocessing


def _column_ramp() -> np.ndarray:
  # pixel (r, c) = 9c: bilinear interpolation of a linear ramp is exact.
  return np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))[None]


def test_resize_matches_half_pixel_bilinear_by_hand():
  out = np.asarray(preprocessing.digits_to_rgb32(_column_ramp()))[0, :, :, 0]
  # Output column j samples input column 0.875 j - 0.0625 (half-pixel
  # centres, scale 28/32), clamped to the edge columns 0 and 27.
  expected = np.clip(0.875 * np.arange(32) - 0.0625, 0, 27) * 9 / 255
  np.testing.assert_allclose(out, np.tile(expected, (32, 1)), atol=1e-6)
  assert out[0, 0] == 0.0
  np.testing.assert_allclose(out[5, 1], 0.8125 * 9 / 255, atol=1e-7)
  np.testing.assert_allclose(out[5, 31], 27 * 9 / 255, atol=1e-7)


def test_resize_agrees_with_pil_bilinear():
  digit = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
  ours = np.asarray(preprocessing.digits_to_rgb32(digit[None]))[0, :, :, 0]
  # PIL's float mode ('F') interpolates without 8-bit rounding.
  pil = Image.fromarray(digit.astype(np.float32)).resize((32, 32), Image.BILINEAR)
  np.testing.assert_allclose(ours * 255, np.asarray(pil), atol=1e-3)


def test_mixture_is_the_mean_of_the_scaled_sources():
  digits = np.zeros((2, 28, 28), np.uint8)
  digits[1] = 255
  images = np.full((2, 32, 32, 3), 51, np.uint8)  # 51 / 255 = 0.2
  images[1, 0, 0] = (255, 0, 102)
  mix = make_mixtures(digits, images)
  for a in mix:
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.float32
  np.testing.assert_allclose(mix.first[0], 0.0)
  np.testing.assert_allclose(mix.first[1], 1.0)  # Constant images stay constant.
  np.testing.assert_allclose(mix.second[0], 0.2, atol=1e-7)
  np.testing.assert_allclose(mix.mixture[0], 0.1, atol=1e-7)
  np.testing.assert_allclose(mix.mixture[1, 0, 0], [1.0, 0.5, 0.7], atol=1e-7)
  np.testing.assert_allclose(mix.mixture, (mix.first + mix.second) / 2)


def test_digit_channels_are_equal_and_values_in_unit_range():
  digits = np.random.default_rng(1).integers(0, 256, (4, 28, 28), np.uint8)
  rgb = np.asarray(preprocessing.digits_to_rgb32(digits))
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 1])
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
  assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_same_result_under_jit():
  rng = np.random.default_rng(2)
  digits = rng.integers(0, 256, (3, 28, 28), np.uint8)
  images = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  eager = make_mixtures(digits, images)
  jitted = jax.jit(make_mixtures)(digits, images)
  for a, b in zip(eager, jitted):
    np.testing.assert_allclose(a, b, atol=1e-7)


def test_mismatched_counts_and_shapes_are_rejected():
  with pytest.raises(ValueError, match='same number'):
    make_mixtures(np.zeros((2, 28, 28), np.uint8),
                  np.zeros((3, 32, 32, 3), np.uint8))
  with pytest.raises(ValueError, match=r'\[N, 32, 32, 3\]'):
    make_mixtures(np.zeros((2, 28, 28), np.uint8),
                  np.zeros((2, 28, 28, 3), np.uint8))
