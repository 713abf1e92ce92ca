"""Where separation fails: scores per CIFAR-10 class and per digit, worst pairs."""

from typing import Any, Mapping

import numpy as np

from mixae_jax.data import pipeline


def per_class(per_image: Mapping[str, Mapping[str, np.ndarray]],
              eval_set: pipeline.EvalSet) -> dict[str, Any]:
  """Mean PSNR/SSIM of both sources, grouped by CIFAR class and by digit.

  Returns:
    ``{"by_cifar_class": {"airplane": {"count", "mnist": {"psnr", "ssim"},
    "cifar10": {...}}, ...}, "by_digit": {"0": {...}, ...}}``.
  """
  n = len(per_image['mnist']['psnr'])
  groupings = {
      'by_cifar_class': (eval_set.image_labels[:n],
                         pipeline.CIFAR10_CLASSES),
      'by_digit': (eval_set.digit_labels[:n], [str(d) for d in range(10)]),
  }
  result = {}
  for grouping, (labels, names) in groupings.items():
    result[grouping] = {}
    for label, name in enumerate(names):
      mask = labels == label
      if not mask.any():
        continue
      result[grouping][name] = {'count': int(mask.sum())} | {
          source: {m: float(np.mean(per_image[source][m][mask]))
                   for m in ('psnr', 'ssim')}
          for source in ('mnist', 'cifar10')}
  return result


def worst_pairs(per_image: Mapping[str, Mapping[str, np.ndarray]],
                count: int = 16) -> np.ndarray:
  """Indices of the `count` pairs with the lowest mean PSNR of both sources."""
  score = (per_image['mnist']['psnr'] + per_image['cifar10']['psnr']) / 2
  return np.argsort(score, kind='stable')[:count]
