"""The eval's metrics: the SSIM blur written as matrix products is dm-pix's."""

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixae_jax import metrics


@pytest.mark.parametrize('shape', [(6, 32, 32, 3), (32, 32, 3), (4, 28, 28, 1)])
def test_ssim_equals_dm_pix_default_in_value_and_gradient(shape):
  k1, k2 = jax.random.split(jax.random.key(0))
  truth = jax.random.uniform(k1, shape)
  prediction = jnp.clip(truth + 0.1 * jax.random.normal(k2, shape), 0, 1)
  want = pix.ssim(prediction, truth, max_val=1.0)
  got = metrics.ssim(prediction, truth)
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert 0.3 < float(jnp.mean(got)) < 0.99  # Neither trivial nor degenerate.
  grad = lambda f: jax.grad(lambda p: jnp.sum(f(p, truth)))(prediction)
  np.testing.assert_allclose(
      grad(metrics.ssim), grad(lambda p, t: pix.ssim(p, t, max_val=1.0)),
      atol=1e-7)


def test_identical_images_score_one():
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-6)


def test_best_ordering_scores_each_pair_under_its_better_assignment():
  rng = np.random.default_rng(0)
  x, y = (rng.uniform(0, 1, (3, 8, 8, 1)).astype(np.float32) for _ in 'xy')
  near = lambda t, s: np.clip(t + s * rng.normal(size=t.shape), 0, 1).astype(
      np.float32)
  a, b = near(x, 0.01), near(y, 0.1)
  # Pair 1 comes out swapped: its estimates match the other sources.
  a[1], b[1] = b[1].copy(), a[1].copy()
  scores, swapped = metrics.best_ordering((a, b), (x, y))
  assert np.asarray(swapped).tolist() == [False, True, False]
  psnr = lambda p, t: -10 * np.log10(np.mean((p - t) ** 2))
  for i in range(3):
    e, f = (b[i], a[i]) if i == 1 else (a[i], b[i])
    np.testing.assert_allclose(scores[i], 0.5 * (psnr(e, x[i]) + psnr(f, y[i])),
                               rtol=1e-4)
  # Scored without the choice, the swapped pair would be far worse.
  kept = 0.5 * (np.asarray(pix.psnr(a, x)) + np.asarray(pix.psnr(b, y)))
  assert kept[1] < scores[1] - 5
