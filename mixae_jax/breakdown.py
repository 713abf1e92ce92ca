"""Where separation fails: scores per class of each source, worst pairs."""

from typing import Any, Mapping

import numpy as np

from mixae_jax import metrics
from mixae_jax.data import pipeline
from mixae_jax.data import sources


def _groupings(eval_set: pipeline.EvalSet, n: int
               ) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
  """Each source's labels and class names, under the grouping's name."""
  pair = eval_set.pair
  if pair == sources.DEFAULT:  # The names the default pair's files have.
    return {'by_cifar_class': (eval_set.second_labels[:n], pair.second.classes),
            'by_digit': (eval_set.first_labels[:n], pair.first.classes)}
  label_1, label_2 = pair.labels
  groupings = {f'by_{label_1}_class': (eval_set.first_labels[:n],
                                       pair.first.classes),
               f'by_{label_2}_class': (eval_set.second_labels[:n],
                                       pair.second.classes)}
  # A folder of images has no classes.
  return {k: v for k, v in groupings.items() if v[1]}


def per_class(per_image: Mapping[str, Mapping[str, np.ndarray]],
              eval_set: pipeline.EvalSet) -> dict[str, Any]:
  """Mean PSNR/SSIM of both sources, grouped by each source's class.

  Returns:
    For the default pair ``{"by_cifar_class": {"airplane": {"count",
    "mnist": {"psnr", "ssim"}, "cifar10": {...}}, ...}, "by_digit": {"0":
    {...}, ...}}``; for others ``by_<label>_class`` per source label.
  """
  labels = eval_set.pair.labels
  n = len(per_image[labels[0]]['psnr'])
  result = {}
  for grouping, (classes, names) in _groupings(eval_set, n).items():
    result[grouping] = {}
    for label, name in enumerate(names):
      mask = classes == label
      if not mask.any():
        continue
      result[grouping][name] = {'count': int(mask.sum())} | {
          source: {m: float(np.mean(per_image[source][m][mask]))
                   for m in ('psnr', 'ssim')}
          for source in labels}
  return result


def worst_pairs(per_image: Mapping[str, Mapping[str, np.ndarray]],
                count: int = 16) -> np.ndarray:
  """Indices of the `count` pairs with the lowest mean PSNR of both sources."""
  label_1, label_2 = metrics.source_labels(per_image)
  score = (per_image[label_1]['psnr'] + per_image[label_2]['psnr']) / 2
  return np.argsort(score, kind='stable')[:count]
