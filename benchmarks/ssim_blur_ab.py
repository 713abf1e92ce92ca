"""One-off A/B: the quick run's train step with dm-pix's SSIM blur against
mixae_jax.metrics' matrix-product blur, and without the SSIM term.

  python -m benchmarks.ssim_blur_ab

Kept for one commit (docs/speed.md quotes its output); the step is
configs/quick.py's at batch 64, as the trainer runs it.
"""

import functools
import time

from mixae_jax import platform

if __name__ == '__main__':
  platform.apply_process_tuning()

import dm_pix as pix  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from configs import quick  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import metrics, train  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax.data import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position

VARIANTS = {
    'dm-pix blur (before)': lambda p, t: pix.ssim(p, t, max_val=1.0),
    'matrix-product blur (now)': metrics.ssim,
    'no SSIM term': None,
}


def main() -> None:
  rng = np.random.default_rng(0)
  pool = pipeline.TrainPool(
      digits=jax.numpy.asarray(rng.integers(0, 256, (1000, 28, 28), np.uint8)),
      images=jax.numpy.asarray(rng.integers(0, 256, (1000, 32, 32, 3), np.uint8)))
  steps, times = {}, {}
  for name, ssim in VARIANTS.items():
    config = quick.get_config()
    if ssim is None:
      config.loss.ssim_weight = 0.0
    else:
      train.metrics_lib = _with_ssim(ssim)
    state = train.create_train_state(config)
    fn = jax.jit(functools.partial(
        train.train_step_on_pool.__wrapped__, batch_size=config.batch_size,
        ssim_weight=train.ssim_weights(config)))
    state, m = fn(state, pool)
    jax.block_until_ready(m)
    steps[name], times[name] = (state, fn), []
  for _ in range(3):  # In turns: machine noise hits all alike.
    for name, (state, fn) in steps.items():
      start = time.perf_counter()
      for _ in range(10):
        state, m = fn(state, pool)
      jax.block_until_ready(m)
      times[name].append((time.perf_counter() - start) / 10)
      steps[name] = (state, fn)
  for name, t in times.items():
    print(f'{name:28s} {np.median(t) * 1e3:6.1f} ms per step (batch 64)')


class _with_ssim:  # pylint: disable=invalid-name
  """metrics with another ssim, for train_step's closure to read."""

  def __init__(self, ssim):
    self.ssim = ssim


if __name__ == '__main__':
  main()
