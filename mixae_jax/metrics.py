"""Image-quality metrics per image (dm-pix) and their aggregation.

PSNR uses a data range of 1 (images in [0, 1]); SSIM is dm-pix's default
(11x11 Gaussian window, sigma 1.5, 'valid' borders) computed on RGB and
averaged over channels. Results are means over images, per source.
"""

import functools
from typing import Any, Callable, Mapping

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

# dm-pix's default SSIM window.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5


@functools.lru_cache(maxsize=8)
def _blur_matrix(size: int) -> np.ndarray:
  """[size - 10, size]: row i holds the Gaussian window at pixels i..i+10.

  Multiplying by it is dm-pix's 'valid' 1-D Gaussian convolution (the window
  is symmetric, so correlation and convolution agree).
  """
  offsets = np.arange(SSIM_FILTER_SIZE) - SSIM_FILTER_SIZE // 2
  window = np.exp(-0.5 * (offsets / SSIM_FILTER_SIGMA) ** 2)
  window /= window.sum()
  out = size - SSIM_FILTER_SIZE + 1
  matrix = np.zeros((out, size), np.float32)
  for i in range(out):
    matrix[i, i:i + SSIM_FILTER_SIZE] = window
  return matrix


def _gaussian_blur(z: jax.Array) -> jax.Array:
  """dm-pix's separable SSIM blur of [..., H, W, C], as two matrix products.

  dm-pix filters with a vmapped 1-D convolution, which XLA:CPU runs as a
  grouped convolution, its slowest form; a banded matrix product computes the
  same sums (docs/speed.md: a quarter of the quick run's step time).
  """
  rows = jnp.asarray(_blur_matrix(z.shape[-3]), z.dtype)
  cols = jnp.asarray(_blur_matrix(z.shape[-2]), z.dtype)
  return jnp.einsum('ih,...hwc,jw->...ijc', rows, z, cols)

SOURCES = ('mnist', 'cifar10')
METRICS = ('psnr', 'ssim', 'mse')


def ssim(prediction: jax.Array, truth: jax.Array) -> jax.Array:
  """SSIM of each image in a batch, [N]; differentiable (the training loss uses it)."""
  return pix.ssim(prediction, truth, max_val=1.0, filter_fn=_gaussian_blur)


def per_image(prediction: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
  """PSNR, SSIM and MSE of each image in a batch: three float32 [N] arrays."""
  return {
      'psnr': pix.psnr(prediction, truth),
      'ssim': ssim(prediction, truth),
      'mse': pix.mse(prediction, truth),
  }


def best_ordering(estimates: tuple[jax.Array, jax.Array],
                  truths: tuple[jax.Array, jax.Array],
                  score: Callable[[jax.Array, jax.Array], jax.Array] = pix.psnr
                  ) -> tuple[jax.Array, jax.Array]:
  """Per pair, the better of the two ways to match estimates to sources.

  A pair drawn twice from one distribution has no first source, so a
  separator is scored as the published separators of such pairs are (LASS,
  BASIS; utterance-level PIT, Kolbaek et al. 2017): for each pair, the mean
  of the two sources' scores under whichever assignment gives the higher
  mean.

  Args:
    estimates: the two separated images, each [N, H, W, C].
    truths: the two true sources, each [N, H, W, C].
    score: a per-image score, higher is better ([N]); PSNR by default.

  Returns:
    The per-pair score [N], and whether the better assignment swaps the
    estimates [N] (bool).
  """
  (a, b), (x, y) = estimates, truths
  kept = 0.5 * (score(a, x) + score(b, y))
  swapped = 0.5 * (score(b, x) + score(a, y))
  return jnp.maximum(kept, swapped), swapped > kept


def align(estimates: tuple[jax.Array, jax.Array],
          truths: tuple[jax.Array, jax.Array],
          score: Callable[[jax.Array, jax.Array], jax.Array] = pix.psnr
          ) -> tuple[jax.Array, jax.Array]:
  """The two estimates, swapped in each pair where `best_ordering` (by
  `score`) swaps them: each then stands beside the source it matches. The
  choice carries no gradient."""
  (a, b), (_, swapped) = estimates, best_ordering(estimates, truths, score)
  swapped = swapped.reshape((-1,) + (1,) * (a.ndim - 1))
  return jnp.where(swapped, b, a), jnp.where(swapped, a, b)


def source_labels(per_image_or_record: Mapping[str, Any]) -> list[str]:
  """The two sources' labels in a per-image result or an eval record: its
  entries of metrics, baselines aside."""
  return [k for k, v in per_image_or_record.items()
          if isinstance(v, Mapping) and 'psnr' in v
          and not k.startswith('baseline')]


def summarize(per_image_metrics: Mapping[str, Mapping[str, np.ndarray]]
              ) -> dict[str, dict[str, float]]:
  """Means over images: ``{source: {metric: mean}}``.

  A PSNR mean leaves out infinite values: an estimate equal to its source,
  which only the mixture-as-answer baseline gives, for an image paired with
  itself (one dataset twice: docs/papers.md).
  """
  def mean(name, values):
    values = np.asarray(values)
    if name == 'psnr':
      values = values[np.isfinite(values)]
    return float(np.mean(values))
  return {source: {name: mean(name, values) for name, values in m.items()}
          for source, m in per_image_metrics.items()}
