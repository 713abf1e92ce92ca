"""Image-quality metrics per image (dm-pix) and their aggregation.

PSNR uses a data range of 1 (images in [0, 1]); SSIM is dm-pix's default
(11x11 Gaussian window, sigma 1.5) computed on RGB and averaged over
channels. Results are means over images, per source.
"""

from typing import Mapping

import dm_pix as pix
import jax
import numpy as np

SOURCES = ('mnist', 'cifar10')
METRICS = ('psnr', 'ssim', 'mse')


def ssim(prediction: jax.Array, truth: jax.Array) -> jax.Array:
  """SSIM of each image in a batch, [N]; differentiable (the training loss uses it)."""
  return pix.ssim(prediction, truth, max_val=1.0)


def per_image(prediction: jax.Array, truth: jax.Array) -> dict[str, jax.Array]:
  """PSNR, SSIM and MSE of each image in a batch: three float32 [N] arrays."""
  return {
      'psnr': pix.psnr(prediction, truth),
      'ssim': ssim(prediction, truth),
      'mse': pix.mse(prediction, truth),
  }


def summarize(per_image_metrics: Mapping[str, Mapping[str, np.ndarray]]
              ) -> dict[str, dict[str, float]]:
  """Means over images: ``{source: {metric: mean}}``."""
  return {source: {name: float(np.mean(values)) for name, values in m.items()}
          for source, m in per_image_metrics.items()}
