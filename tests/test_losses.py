"""The loss's terms: values, gradients, and the tasks' targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixae_jax import losses


def test_pixel_losses_are_the_mse_in_value_and_differ_in_direction():
  # Three images of four pixels, each with one error everywhere.
  per_image = jnp.array([-0.03, 0.1, 0.2])
  error = jnp.broadcast_to(per_image[:, None, None, None], (3, 2, 2, 1))
  mse = per_image ** 2
  grads = {}
  for kind in losses.PIXEL_LOSSES:
    value, grads[kind] = jax.value_and_grad(
        lambda e, kind=kind: losses.pixel_term(e, kind))(error)
    assert float(value) == pytest.approx(float(mse.mean()), rel=1e-5), kind
  pixel = lambda g: g[:, 0, 0, 0]  # Every pixel of an image alike.
  np.testing.assert_allclose(pixel(grads['mse']), 2 * per_image / 12, rtol=1e-5)
  # The mean absolute error's: the same size for every pixel, a sign each.
  mae = jnp.abs(per_image).mean()
  np.testing.assert_allclose(pixel(grads['l1']),
                             mse.mean() / mae * jnp.sign(per_image) / 12,
                             rtol=1e-4)
  with pytest.raises(ValueError, match="unknown pixel loss 'psnr'"):
    losses.pixel_term(error, 'psnr')


def test_the_loss_weighs_each_output_and_adds_ssim_only_when_weighted():
  rng = np.random.default_rng(0)
  truth = [jnp.asarray(rng.uniform(0, 1, (2, 32, 32, 3)), jnp.float32)
           for _ in range(2)]
  guess = [jnp.clip(t + 0.1, 0, 1) for t in truth]
  plain = losses.LossSettings('separate', 'mse', 0.5, 2.0, 0.0)
  loss, terms = losses.separation_loss(*guess, *truth, plain)
  assert set(terms) == {'digit_mse', 'image_mse'}
  assert float(loss) == pytest.approx(
      0.5 * float(terms['digit_mse']) + 2.0 * float(terms['image_mse']))
  ssim = losses.LossSettings('separate', 'mse', 0.5, 2.0, 0.2)
  loss, terms = losses.separation_loss(*guess, *truth, ssim)
  assert float(loss) == pytest.approx(
      0.5 * (float(terms['digit_mse']) + 0.2 * (1 - float(terms['digit_ssim'])))
      + 2.0 * (float(terms['image_mse'])
               + 0.2 * (1 - float(terms['image_ssim']))), rel=1e-6)
