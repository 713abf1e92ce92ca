"""Model output shapes, ranges, parameter counts and train/eval behaviour."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mixae_jax import models
from mixae_jax.errors import ConfigError


def _init(model, batch=2):
  x = jax.random.uniform(jax.random.key(0), (batch, 32, 32, 3))
  variables = model.init({'params': jax.random.key(1)}, x, train=False)
  return variables, x


def _count(tree) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def test_seed004_shapes_and_parameter_count():
  model = models.create_model(ml_collections.ConfigDict({'name': 'seed004'}))
  variables, x = _init(model)
  digit, image = model.apply(variables, x, train=False)
  assert digit.shape == image.shape == (2, 32, 32, 3)
  conv = lambda k, i, o: k * k * i * o + o
  dense = lambda i, o: i * o + o
  encoder = (conv(4, 3, 64) + conv(4, 64, 128) + conv(4, 128, 256)
             + 2 * (64 + 128 + 256)  # BatchNorm scale and bias
             + dense(4096, 512) + dense(512, 128))
  decoder = (dense(128, 512) + dense(512, 4096) + conv(4, 256, 128)
             + conv(4, 128, 64) + conv(4, 64, 3) + 2 * (128 + 64))
  assert _count(variables['params']) == encoder + 2 * decoder == 8_475_718
  assert _count(variables['batch_stats']) == 2 * (64 + 128 + 256 + 2 * (128 + 64))


@pytest.mark.parametrize('digit_channels', [1, 3])
def test_unet_shapes_and_parameter_count(digit_channels):
  config = ml_collections.ConfigDict(dict(
      name='unet', widths=(8, 16), norm='group', digit_channels=digit_channels))
  model = models.create_model(config)
  variables, x = _init(model)
  digit, image = model.apply(variables, x)
  assert digit.shape == image.shape == (2, 32, 32, 3)
  if digit_channels == 1:
    np.testing.assert_array_equal(digit[..., 0], digit[..., 2])
  conv3 = lambda i, o: 9 * i * o          # no bias: GroupNorm follows
  gn = lambda c: 2 * c
  block = lambda i, o: conv3(i, o) + gn(o) + conv3(o, o) + gn(o)
  encoder = block(3, 8) + block(8, 16)
  decoder = lambda out: ((4 * 16 * 8 + 8) + block(16, 8) + (8 * out + out))
  assert _count(variables['params']) == encoder + decoder(digit_channels) + decoder(3)


@pytest.mark.parametrize('name', ['seed004', 'unet'])
def test_outputs_are_in_unit_range(name):
  model = models.create_model(ml_collections.ConfigDict(dict(
      name=name, widths=(4, 8), norm='batch', digit_channels=3)))
  variables, x = _init(model, batch=4)
  for out in model.apply(variables, 10 * x):
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_seed004_dropout_and_batchnorm_only_act_in_training():
  model = models.Seed004()
  variables, x = _init(model, batch=4)
  a = model.apply(variables, x, train=False)
  b = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(a[0], b[0])  # Eval is deterministic.
  (c, _), updates = model.apply(variables, x, train=True, mutable=['batch_stats'],
                                rngs={'dropout': jax.random.key(0)})
  (d, _), _ = model.apply(variables, x, train=True, mutable=['batch_stats'],
                          rngs={'dropout': jax.random.key(1)})
  assert not jnp.allclose(c, d)  # Different dropout masks.
  moved = jax.tree.map(lambda u, v: bool(jnp.any(u != v)),
                       updates['batch_stats'], variables['batch_stats'])
  assert all(jax.tree.leaves(moved))  # Every running statistic was updated.


@pytest.mark.parametrize('field, value, message', [
    ('name', 'resnet', "model.name='resnet' is unknown"),
    ('norm', 'layer', "model.norm='layer' is unknown"),
    ('widths', (8,), 'at least two positive entries'),
    ('digit_channels', 2, 'must be 1'),
])
def test_bad_model_settings_raise_config_errors(field, value, message):
  config = ml_collections.ConfigDict(dict(
      name='unet', widths=(8, 16), norm='group', digit_channels=3))
  config[field] = value
  with pytest.raises(ConfigError, match=message):
    models.create_model(config)


@pytest.mark.parametrize('kernel, padding, size', [
    (4, ((2, 2), (2, 2)), 4), (4, ((2, 2), (2, 2)), 8), (2, 'SAME', 4), (2, 'SAME', 16)])
def test_sub_pixel_upsampling_equals_conv_transpose(kernel, padding, size):
  reference = nn.ConvTranspose(6, (kernel, kernel), strides=(2, 2), padding=padding)
  x = jax.random.normal(jax.random.key(0), (3, size, size, 5))
  variables = reference.init(jax.random.key(1), x)
  # Random bias too, so every parameter is exercised.
  variables = jax.tree.map(lambda p: jax.random.normal(jax.random.key(2), p.shape),
                           variables)
  ours = models.UpConv2x(6, kernel)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(
      jnp.shape, variables)
  want = reference.apply(variables, x)
  got = ours.apply(variables, x)
  assert got.shape == want.shape == (3, 2 * size, 2 * size, 6)
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)
  # And the gradients, which training uses.
  loss = lambda f: lambda v, x: jnp.sum(jnp.sin(f.apply(v, x)))
  g_ref = jax.grad(loss(reference), argnums=(0, 1))(variables, x)
  g_our = jax.grad(loss(ours), argnums=(0, 1))(variables, x)
  for a, b in zip(jax.tree.leaves(g_our), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
