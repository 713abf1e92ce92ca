"""Model output shapes, ranges, parameter counts and train/eval behaviour."""

import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mixae_jax import models
from mixae_jax.models import heads
from mixae_jax.data import preprocessing
from mixae_jax.errors import ConfigError


def _init(model, batch=2):
  x = jax.random.uniform(jax.random.key(0), (batch, 32, 32, 3))
  variables = model.init({'params': jax.random.key(1)}, x, train=False)
  return variables, x


def _count(tree) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def test_seed004_shapes_and_parameter_count():
  model = models.create_model(
      ml_collections.ConfigDict({'name': 'seed004'}), 'float32')
  # Shapes only, computing nothing (the next test runs it).
  variables, x = jax.eval_shape(lambda: _init(model))
  digit, image = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=False), variables, x)
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
  model = _unet(digit_channels=digit_channels)
  variables, x = _init(model)
  digit, image = model.apply(variables, x)
  assert digit.shape == image.shape == (2, 32, 32, 3)
  if digit_channels == 1:
    np.testing.assert_array_equal(digit[..., 0], digit[..., 2])
  conv3 = lambda i, o: 9 * i * o          # no bias: BatchNorm follows
  gn = lambda c: 2 * c                    # its scale and shift
  block = lambda i, o: conv3(i, o) + gn(o) + conv3(o, o) + gn(o)
  encoder = block(3, 8) + block(8, 16)
  decoder = lambda out: ((4 * 16 * 8 + 8) + block(16, 8) + (8 * out + out))
  assert _count(variables['params']) == encoder + decoder(digit_channels) + decoder(3)


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
    ('activation', 'silu', "model.activation='silu' is unknown"),
    ('widths', (8,), 'at least two positive entries'),
    ('digit_channels', 2, 'must be 1'),
    ('decoders', 'triple', "model.decoders='triple' is unknown"),
])
def test_bad_model_settings_raise_config_errors(field, value, message):
  with pytest.raises(ConfigError, match=message):
    _unet(**{field: value})


def test_unet_parameter_names_are_those_of_the_release():
  # pretrained/dual was saved with these names; they must not drift.
  variables, _ = _init(_unet())
  decoder = variables['params']['digit_decoder']
  assert set(decoder) == {'UpConv2x_0', 'ConvBlock_0', 'Conv_0'}
  block = decoder['ConvBlock_0']
  assert set(block) == {'Conv_0', 'Conv_1', 'BatchNorm_0', 'BatchNorm_1'}
  assert block['Conv_0']['kernel'].shape == (3, 3, 16, 8)
  assert set(block['Conv_0']) == {'kernel'}


@pytest.mark.parametrize('name', ['unet', 'seed004', 'unet_shared'])
def test_jvp_and_grad_through_the_default_model(name):
  # The default (flax) layers support every JAX transformation.
  model = {'unet': _unet(widths=(4, 8)), 'seed004': models.Seed004(),
           'unet_shared': _unet(widths=(4, 8), decoders='shared')}[name]
  variables, x = _init(model)
  f = lambda x: model.apply(variables, x)[1]
  tangent = jax.random.normal(jax.random.key(2), x.shape)
  cotangent = jax.random.normal(jax.random.key(3), x.shape)
  out, jvp = jax.jvp(f, (x,), (tangent,))
  _, vjp = jax.vjp(f, x)
  assert jvp.shape == out.shape == (2, 32, 32, 3)
  # Forward and reverse mode are each other's transpose: <J t, u> = <t, J^T u>.
  np.testing.assert_allclose(jnp.vdot(jvp, cotangent),
                             jnp.vdot(tangent, vjp(cotangent)[0]), rtol=1e-3)
  assert float(jnp.abs(jvp).max()) > 0


def _unet(dtype='float32', **fields):
  """A small U-Net; every field as `configs/dual.py` names it."""
  config = dict(name='unet', widths=(8, 16), digit_channels=3, head='twin',
                digit_resized_from=0, activation='relu', decoders='twin')
  return models.create_model(ml_collections.ConfigDict({**config, **fields}),
                             dtype)


def test_consistent_head_outputs_average_to_the_mixture():
  variables, x = _init(_unet(head='consistent'))
  x = 0.25 + 0.5 * x  # Away from 0 and 1, where clipping would bite.
  digit, image = _unet(head='consistent').apply(variables, x)
  np.testing.assert_allclose((digit + image) / 2, x, atol=1e-6)
  # Same parameters as the twin head; only the combination differs.
  twin_digit, twin_image = _unet().apply(variables, x)
  np.testing.assert_allclose(digit - twin_digit, image - twin_image, atol=1e-6)


def test_grey_consistent_head_keeps_the_digit_grey_and_averages_its_estimates():
  model = _unet(head='consistent', digit_channels=1)
  variables, x = _init(model)
  x = 0.25 + 0.5 * x
  digit, image = model.apply(variables, x)
  np.testing.assert_array_equal(digit[..., 0], digit[..., 2])
  # A real mixture's estimates average to it exactly, clipped or not.
  np.testing.assert_allclose((digit + image) / 2, x, atol=1e-6)
  # The digit is the mean of the decoder's grey digit and 2m - image's grey,
  # clipped to where both sources stay in [0, 1].
  twin_digit, twin_image = _unet(digit_channels=1).apply(variables, x)
  lowest = np.maximum(0, np.max(2 * x - 1, -1, keepdims=True))
  highest = np.minimum(1, np.min(2 * x, -1, keepdims=True))
  expected = np.clip(0.5 * (twin_digit[..., :1] + jnp.mean(
      2 * x - twin_image, -1, keepdims=True)), lowest, highest)
  np.testing.assert_allclose(digit, np.broadcast_to(expected, x.shape),
                             atol=1e-6)
  np.testing.assert_allclose(image, np.clip(2 * x - digit, 0, 1), atol=1e-6)


@pytest.mark.parametrize('digit_channels', [1, 3])
def test_a_shared_decoder_computes_what_twins_with_equal_weights_compute(
    digit_channels):
  twin = _unet(digit_channels=digit_channels, head='consistent')
  shared = _unet(digit_channels=digit_channels, head='consistent',
                 decoders='shared')
  twin_vars, x = _init(twin)
  shared_vars, _ = _init(shared)
  params = shared_vars['params']
  assert 'digit_decoder' not in params and 'image_decoder' not in params
  # One decoder: the twins' parameters less one decoder's, whose output
  # layer's channels move to the shared one.
  out = lambda v: v['params']['image_decoder']['Conv_0']
  assert _count(params) == (_count(twin_vars['params'])
                            - _count(twin_vars['params']['image_decoder'])
                            + _count(out(twin_vars)))
  # Twins with equal hidden weights are the shared decoder, its output
  # layer the twins' two side by side.
  tp = dict(twin_vars['params'])
  digit_dec, image_dec = dict(tp['digit_decoder']), dict(tp['image_decoder'])
  image_dec.update({k: v for k, v in digit_dec.items() if k != 'Conv_0'})
  tp['image_decoder'] = image_dec
  params = {k: v for k, v in tp.items()
            if k not in ('digit_decoder', 'image_decoder')}
  params['decoder'] = {**{k: v for k, v in digit_dec.items() if k != 'Conv_0'},
                       'Conv_0': jax.tree.map(
                           lambda a, b: jnp.concatenate([a, b], -1),
                           digit_dec['Conv_0'], image_dec['Conv_0'])}
  expected = twin.apply({**twin_vars, 'params': tp}, x)
  got = shared.apply({**shared_vars, 'params': params}, x)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert float(jnp.abs(got[0] - got[1]).max()) > 0  # Two different sources.


def test_unknown_head_is_a_config_error():
  with pytest.raises(ConfigError, match="model.head='mean' is unknown"):
    _unet(head='mean')


def test_reference_autoencoders_shapes_and_parameter_counts():
  conv = lambda k, i, o: k * k * i * o + o
  mixture_ae = models.create_model(
      ml_collections.ConfigDict({'name': 'mixture_ae'}), 'float32')
  variables, x = _init(mixture_ae)
  recon, same = mixture_ae.apply(variables, x)
  assert recon.shape == (2, 32, 32, 3)
  np.testing.assert_array_equal(recon, same)  # One decoder: no separation.
  # Reference 002's weight shapes: the decoder mirrors the encoder.
  assert _count(variables['params']) == (
      conv(3, 3, 16) + conv(3, 16, 32) + conv(7, 32, 64)
      + conv(7, 64, 32) + conv(3, 32, 16) + conv(3, 16, 3)) == 210_947
  digit_ae = models.create_model(
      ml_collections.ConfigDict({'name': 'digit_ae'}), 'float32')
  variables, x = _init(digit_ae)
  digit, image = digit_ae.apply(variables, x)
  np.testing.assert_array_equal(digit[..., 0], digit[..., 2])
  np.testing.assert_allclose(image, np.clip(2 * x - digit, 0, 1), atol=1e-6)
  assert _count(variables['params']) == (
      conv(3, 1, 16) + conv(3, 16, 32) + conv(3, 32, 64)          # 64-d code
      + conv(4, 64, 32) + conv(4, 32, 16) + conv(4, 16, 8) + conv(4, 8, 1))


def _old_grey_head(mixture, digit, image):
  """The consistent grey head before `feasible_digit`: clipped to [0, 1] only."""
  grey = np.clip(0.5 * (digit[..., :1] + np.mean(2 * mixture - image, -1,
                                                  keepdims=True)), 0, 1)
  return np.broadcast_to(grey, mixture.shape), np.clip(2 * mixture - grey, 0, 1)


@pytest.mark.parametrize('grey_digit', [True, False])
def test_feasible_head_brings_both_sources_closer_to_the_truth(grey_digit):
  rng = np.random.default_rng(0)
  shape = (64, 8, 8)
  # Real mixtures, with the saturated pixels real images have.
  truth_digit = np.clip(rng.uniform(-0.5, 1.5, shape + (1,)), 0, 1)
  truth_digit = np.broadcast_to(truth_digit, shape + (3,))
  truth_image = np.clip(rng.uniform(-0.5, 1.5, shape + (3,)), 0, 1)
  mixture = ((truth_digit + truth_image) / 2).astype(np.float32)
  # Decoder outputs: the truth plus large errors.
  digit = truth_digit[..., :1 if grey_digit else 3] + rng.normal(
      0, 0.3, shape + (1 if grey_digit else 3,))
  image = truth_image + rng.normal(0, 0.3, shape + (3,))
  new_digit, new_image = heads.apply_head(
      'consistent', mixture, digit.astype(np.float32),
      image.astype(np.float32), grey_digit=grey_digit, digit_resized_from=0,
      projection_steps=heads.PROJECTION_STEPS)
  new_digit, new_image = np.asarray(new_digit), np.asarray(new_image)
  np.testing.assert_allclose((new_digit + new_image) / 2, mixture, atol=1e-6)
  assert new_digit.min() >= 0 and new_digit.max() <= 1
  assert new_image.min() >= 0 and new_image.max() <= 1
  if grey_digit:
    old_digit, old_image = _old_grey_head(mixture, digit, image)
  else:
    residual = mixture - (digit + image) / 2
    old_digit = np.clip(digit + residual, 0, 1)
    old_image = np.clip(image + residual, 0, 1)
  for new, old, truth in ((new_digit, old_digit, truth_digit),
                          (new_image, old_image, truth_image)):
    new_error, old_error = np.abs(new - truth), np.abs(old - truth)
    # Never further from the truth, pixel by pixel, channel by channel...
    assert np.all(new_error <= old_error + 1e-6)
    # ...and nearer where the [0, 1] clip alone left an impossible pair.
    assert np.mean(new_error) < 0.95 * np.mean(old_error)


def test_feasible_head_on_an_input_that_is_no_mixture():
  # Pure red: no grey digit keeps 2 * mixture - digit in [0, 1] everywhere.
  mixture = jnp.zeros((1, 4, 4, 3)).at[..., 0].set(1.0)
  digit = jnp.full((1, 4, 4, 1), 0.3)
  image = jnp.full((1, 4, 4, 3), 0.5)
  out_digit, out_image = heads.apply_head(
      'consistent', mixture, digit, image, grey_digit=True,
      digit_resized_from=0, projection_steps=heads.PROJECTION_STEPS)
  expected_digit, expected_image = _old_grey_head(
      np.asarray(mixture), np.asarray(digit), np.asarray(image))
  np.testing.assert_allclose(out_digit, expected_digit, atol=1e-6)
  np.testing.assert_allclose(out_image, expected_image, atol=1e-6)


def test_upsampling_matrix_is_the_digits_resize():
  a, a_pinv, norm = heads.upsampling_matrix(28, 32)
  assert a.shape == (32, 28) and a_pinv.shape == (28, 32)
  np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-6)  # Interpolation.
  assert a.min() >= 0
  np.testing.assert_allclose(a_pinv @ a, np.eye(28), atol=1e-4)
  np.testing.assert_allclose(norm, np.linalg.norm(a, 2) ** 2, rtol=1e-5)
  digits = np.random.default_rng(0).integers(0, 256, (4, 28, 28), np.uint8)
  upsampled = np.asarray(preprocessing.digits_to_rgb32(digits))[..., 0]
  np.testing.assert_allclose(np.einsum('ij,njk,lk->nil', a, digits / 255.0, a),
                             upsampled, atol=2e-6)


def _noisy_digit_estimates(seed: int = 1, n: int = 32, noise: float = 0.1):
  """Mixtures, their true grey digits and the truth plus white noise."""
  rng = np.random.default_rng(seed)
  digits = rng.integers(0, 256, (n, 28, 28), np.uint8)
  digits[rng.uniform(size=digits.shape) < 0.7] = 0  # MNIST is mostly black.
  images = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
  images[rng.uniform(size=images.shape) < 0.2] = 255  # Saturated channels.
  mix = preprocessing.make_mixtures(digits, images)
  truth = np.asarray(mix.first[..., :1])
  estimate = truth + rng.normal(0, noise, truth.shape).astype(np.float32)
  return mix.mixture, truth, estimate


def test_upsampled_digit_projection_is_the_nearest_point_of_the_set():
  mixture, truth, estimate = _noisy_digit_estimates()
  distance = lambda x: np.sum((x - estimate) ** 2, axis=(1, 2, 3))
  # The solver converges: 1,000 steps improve little on 300.
  near = np.asarray(heads.project_digit(mixture, estimate, 28, steps=300))
  nearest = np.asarray(heads.project_digit(mixture, estimate, 28, steps=1000))
  assert np.all(distance(near) <= distance(nearest) * (1 + 1e-3))
  # The limit is in the set: a 28x28 pre-image in [0, 1], upsampled...
  a, a_pinv, _ = heads.upsampling_matrix(28, 32)
  pre = np.einsum('ij,njkc,lk->nilc', a_pinv, nearest, a_pinv)
  assert pre.min() > -1e-3 and pre.max() < 1 + 1e-3
  np.testing.assert_allclose(np.einsum('ij,njkc,lk->nilc', a, pre, a),
                             nearest, atol=1e-3)
  # ...with both sources in [0, 1] (the last clip makes that exact).
  for projected in (nearest, np.asarray(heads.project_digit(mixture, estimate, 28))):
    image = 2 * np.asarray(mixture) - projected
    assert projected.min() >= 0 and projected.max() <= 1
    assert image.min() >= -1e-6 and image.max() <= 1 + 1e-6
    # Nearer the estimate than the truth, which is in the set too.
    assert np.all(distance(projected) < distance(truth))
  # A true digit is its own projection.
  np.testing.assert_allclose(heads.project_digit(mixture, truth, 28), truth,
                             atol=1e-4)


def test_projecting_onto_upsampled_digits_never_moves_away_from_the_truth():
  mixture, truth, estimate = _noisy_digit_estimates()
  clipped = np.asarray(heads.project_digit(mixture, estimate, 0))
  projected = np.asarray(heads.project_digit(mixture, estimate, 28))
  error = lambda x: np.sum((x - truth) ** 2, axis=(1, 2, 3))
  assert np.all(error(projected) <= error(clipped) * (1 + 1e-5))
  # White noise keeps about 28^2 / 32^2 of its energy in the range, and the
  # pre-image's [0, 1] takes much of the rest on the black background.
  assert np.mean(error(projected)) < 0.6 * np.mean(error(clipped))


@pytest.mark.parametrize('value', [32, -1, True, 28.0])
def test_bad_digit_resized_from_is_a_config_error(value):
  with pytest.raises(ConfigError, match='model.digit_resized_from='):
    _unet(head='consistent', digit_channels=1, digit_resized_from=value)


def test_unet_head_uses_the_upsampling_prior():
  model = _unet(head='consistent', digit_channels=1, digit_resized_from=28)
  variables, x = _init(model)
  digit, image = model.apply(variables, x)
  plain_digit, _ = _unet(head='consistent', digit_channels=1).apply(variables, x)
  np.testing.assert_allclose(digit, heads.project_digit(x, plain_digit[..., :1], 28)
                             .repeat(3, -1), atol=1e-5)
  assert np.abs(np.asarray(digit) - np.asarray(plain_digit)).max() > 1e-3


def test_bfloat16_runs_every_activation_inside_the_unet_in_bfloat16():
  model = _unet('bfloat16', widths=(4, 8, 16), digit_channels=1,
                head='consistent', digit_resized_from=28)
  x = jnp.zeros((2, 32, 32, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(
      v, x, train=True, mutable=['batch_stats']))(variables, x).jaxpr
  def equations(jaxpr):
    for eqn in jaxpr.eqns:
      yield eqn
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from equations(sub)
  dtypes = {}
  for eqn in equations(jaxpr):
    name = eqn.primitive.name
    if name in ('conv_general_dilated', 'concatenate', 'reduce_window_max'):
      dtypes.setdefault(name, set()).update(
          str(v.aval.dtype) for v in eqn.outvars)
  # The convolutions, the skip concatenations and the pooling all compute
  # in bfloat16 (BatchNorm's output feeds the next convolution, the
  # pooling and the skips): no float32 activation is left inside.
  for name in ('conv_general_dilated', 'concatenate', 'reduce_window_max'):
    assert dtypes.get(name) == {'bfloat16'}, (name, dtypes)
  # Parameters and BatchNorm statistics stay float32.
  assert {str(a.dtype) for a in jax.tree.leaves(variables)} == {'float32'}
