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
