"""Convolutions whose weight gradient trains faster on XLA:CPU; same math.

XLA computes a convolution's weight gradient as another convolution, whose
"batch" is the input's channels and whose "features" are its images, so it
first copies the layer's input into a [channels, height, width, images]
layout. When that input is the output of elementwise work (a BatchNorm and a
ReLU, as in every layer here), XLA:CPU fuses the work into the copy: the fused
transpose then runs as a scalar loop, because the tiled code that XLA:CPU
emits for transposes does not take a fusion with broadcasts in it. A
128x32x32x32 ReLU'd BatchNorm output takes 8-12 ms that way against about
1 ms for the plain transpose of the same array (an ad-hoc timing on the
project's 2-core machine); such transposes were a third of the U-Net's
train step (docs/speed.md).

`conv_general_dilated` is `jax.lax.conv_general_dilated` (the same signature,
forward pass and gradients) whose weight gradient reads its input through
`fusion_barrier`: a loop that runs zero times, which XLA cannot see through,
so the input arrives materialised (the forward pass has already computed it)
and the layout copy is a plain transpose. Only on the CPU: elsewhere the
barrier is the identity and XLA compiles the usual gradient.
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax


def _zero_trip_loop(x: jax.Array, like: jax.Array) -> jax.Array:
  """`x` through a while loop that runs zero times, decided at run time.

  Nothing exceeds +inf (NaN compares false too), so the trip count is zero;
  XLA cannot fold the comparison, so it keeps the loop and cannot fuse what
  produced `x` into what consumes the loop's result. The trip count is read
  from `like`, a replicated parameter, so that a sharded `x` needs no
  communication.
  """
  trips = (like.reshape(-1)[0] > jnp.inf).astype(jnp.int32)
  # The body is never run; it must not be the identity, or XLA drops the loop.
  _, x = lax.while_loop(lambda c: c[0] < trips,
                        lambda c: (c[0] + 1, c[1] * 2), (jnp.int32(0), x))
  return x


def fusion_barrier(x: jax.Array, like: jax.Array) -> jax.Array:
  """Returns `x` unchanged, kept apart from its producer's fusion on the CPU.

  Args:
    x: any array.
    like: a small array available at run time (a kernel); only its first
      element is read.
  """
  return lax.platform_dependent(x, like, cpu=_zero_trip_loop,
                                default=lambda x, _: x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _conv(conv_fn: Callable[..., jax.Array], x: jax.Array,
          kernel: jax.Array) -> jax.Array:
  return conv_fn(x, kernel)


def _conv_fwd(conv_fn, x, kernel):
  return conv_fn(x, kernel), (x, kernel)


def _conv_bwd(conv_fn, residuals, dy):
  x, kernel = residuals
  # Both gradients are JAX's own transposes of the same convolution; only
  # the weight gradient's input goes through the barrier.
  _, input_vjp = jax.vjp(lambda x_: conv_fn(x_, kernel), x)
  x_kept = fusion_barrier(x, kernel)
  _, kernel_vjp = jax.vjp(lambda k_: conv_fn(x_kept, k_), kernel)
  return input_vjp(dy)[0], kernel_vjp(dy)[0]


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array,
                         window_strides: Any, padding: Any,
                         lhs_dilation: Any = None, rhs_dilation: Any = None,
                         dimension_numbers: Any = None,
                         feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> jax.Array:
  """`jax.lax.conv_general_dilated`, with the weight gradient described above.

  Takes the same arguments and returns the same result; pass it to
  ``nn.Conv(..., conv_general_dilated=conv_general_dilated)``.
  """
  conv_fn = functools.partial(
      lax.conv_general_dilated, window_strides=window_strides,
      padding=padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
  return _conv(conv_fn, lhs, rhs)
