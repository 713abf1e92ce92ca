"""`mixae_jax.conv`: the same convolution and gradients as `jax.lax`."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixae_jax import conv

# (kernel size, strides, padding): the shapes the models use.
CASES = [
    ((3, 3), (1, 1), 'SAME'),                 # U-Net blocks
    ((4, 4), (2, 2), ((1, 1), (1, 1))),       # seed004 encoder
    ((1, 1), (1, 1), 'SAME'),                 # U-Net output layer
]


def _conv_pair(kernel_size, strides, padding):
  kwargs = dict(window_strides=strides, padding=padding,
                dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return (functools.partial(jax.lax.conv_general_dilated, **kwargs),
          functools.partial(conv.conv_general_dilated, **kwargs))


def _inputs(kernel_size, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(4, 8, 8, 5)), jnp.float32)
  k = jnp.asarray(rng.normal(size=kernel_size + (5, 6)), jnp.float32)
  return x, k


@pytest.mark.parametrize('kernel_size,strides,padding', CASES)
def test_forward_and_gradients_match_lax(kernel_size, strides, padding):
  reference, ours = _conv_pair(kernel_size, strides, padding)
  x, k = _inputs(kernel_size)
  np.testing.assert_array_equal(ours(x, k), reference(x, k))
  # A loss that is not linear in the output, so dy varies per element.
  loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(jax.nn.relu(x), k)))
  want = jax.jit(jax.grad(loss(reference), argnums=(0, 1)))(x, k)
  got = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(x, k)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_weight_gradient_reads_through_the_barrier_on_cpu():
  _, ours = _conv_pair((3, 3), (1, 1), 'SAME')
  x, k = _inputs((3, 3))
  grad = jax.jit(jax.grad(lambda x, k: jnp.sum(ours(jax.nn.relu(x), k) ** 2),
                          argnums=1))
  hlo = grad.lower(x, k).compile().as_text()
  if jax.default_backend() == 'cpu':
    assert ' while(' in hlo
  else:
    assert ' while(' not in hlo


@pytest.mark.parametrize('like', [0.0, np.inf, -np.inf, np.nan])
def test_fusion_barrier_is_the_identity(like):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
  x = x.at[0, 0].set(np.nan)
  out = jax.jit(conv.fusion_barrier)(x, jnp.full((2, 2), like, jnp.float32))
  np.testing.assert_array_equal(out, x)


def test_flax_conv_with_it_keeps_its_parameters():
  x, _ = _inputs((3, 3))
  plain = nn.Conv(6, (3, 3))
  ours = nn.Conv(6, (3, 3), conv_general_dilated=conv.conv_general_dilated)
  variables = plain.init(jax.random.key(0), x)
  assert (jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x))
          == jax.tree.map(jnp.shape, variables))
  np.testing.assert_array_equal(ours.apply(variables, x),
                                plain.apply(variables, x))

