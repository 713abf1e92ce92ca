"""Scoring a trained model's variants on the first fixed eval pairs (benchmarks only)."""

import time
from typing import Any, Callable

import jax
import numpy as np

from mixae_jax import input_pipeline
from mixae_jax.separator import Separator


def load(workdir: str, num_pairs: int) -> tuple[Separator, Any]:
  """The model in `workdir` and the first `num_pairs` pairs of its eval set."""
  separator = Separator.restore(workdir)
  config = separator.config
  datasets = input_pipeline.load_datasets(config.data, with_train=False)
  return separator, input_pipeline.make_eval_set(datasets, num_pairs,
                                                 config.eval.pairing_seed)


def score(scores: Callable[[Any, Any], Any], eval_set: Any, num_pairs: int,
          batch_size: int) -> tuple[Any, float]:
  """Runs ``scores(digits, images)`` over the pairs, batch by batch.

  Returns:
    The per-image results concatenated over batches (a numpy pytree), and
    the seconds it took.
  """
  start = time.perf_counter()
  chunks = [scores(eval_set.digits[i:i + batch_size],
                   eval_set.images[i:i + batch_size])
            for i in range(0, num_pairs, batch_size)]
  per_image = jax.tree.map(lambda *xs: np.concatenate(xs),
                           *jax.device_get(chunks))
  return per_image, time.perf_counter() - start
