"""What the models share: the layer-constructor type, BatchNorm, and a faster
form of the stride-2 transposed convolution with flax's parameters."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

# A layer constructor, as flax's examples inject them: called with the
# layer's settings, it returns a module (e.g. `nn.ConvTranspose`, or
# `SubpixelConvTranspose`, which has the same parameters).
ModuleDef = Any


def batch_norm(train: bool, name: str | None = None,
               dtype: Any = None) -> nn.Module:
  """BatchNorm with PyTorch's defaults (momentum 0.1, epsilon 1e-5).

  Its statistics and parameters stay float32; `dtype` is its output's
  (None: the input's and the parameters' promoted type).
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, dtype=dtype, name=name)


# For a stride-2 transposed convolution, which kernel tap feeds output parity
# p from window offset d of a stride-1 convolution over the input (k = a zero
# tap). Derived from lax.conv_transpose's definition; tests check it against
# nn.ConvTranspose.
_SUBPIXEL_TAPS = {
    # k=4, padding 2 on the dilated input (PyTorch's k=4, s=2, p=1): a 3x3
    # window over inputs m-1, m, m+1 for outputs 2m and 2m+1.
    4: (np.array([[0, 2, 4], [4, 1, 3]]), 1),
    # k=2, 'SAME': output 2m+p comes from input m through tap 1-p.
    2: (np.array([[1], [0]]), 0),
}
# For the k=4 transposed convolution, the two taps (along one axis) that
# feed output parity p, and the padding that puts inputs m-1, m (p=0) or
# m, m+1 (p=1) under a 2-wide window at m.
_PHASE_TAPS = {0: (np.array([0, 2]), (1, 0)), 1: (np.array([1, 3]), (0, 1))}
# A k=4 layer with at least this many output features computes each output
# parity as its own 2x2 convolution; narrower ones use one convolution over
# the 3x3 window (docs/speed.md).
PHASES_MIN_FEATURES = 16
_PADDINGS = {4: ((2, 2), (2, 2)), 2: 'SAME'}


def _conv(x: jax.Array, kernel: jax.Array, padding: Any) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class SubpixelConvTranspose(nn.Module):
  """``nn.ConvTranspose`` with stride 2, computed as stride-1 convolutions.

  The same function, parameters (``kernel`` [k, k, in, out], ``bias``) and
  initialisation as ``nn.ConvTranspose(features, (k, k), strides=(2, 2),
  padding=...)`` for the two layers the models use: k=4 with padding
  ((2, 2), (2, 2)) (PyTorch's k=4, s=2, p=1) and k=2 with 'SAME'. Each
  output parity reads only some kernel taps; XLA:CPU's transposed
  convolution and its gradient do not exploit that, these forms do:

    * 'window': one convolution to 4x the channels over the window every
      parity needs (1x1 for k=2; 3x3 for k=4, 4 of whose 9 taps are live);
    * 'phases' (k=4, at least `PHASES_MIN_FEATURES` outputs): one 2x2
      convolution per parity, with only its taps.

  Then depth-to-space. Called with ``nn.ConvTranspose``'s arguments.
  """
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (2, 2)
  padding: Any = 'SAME'
  use_bias: bool = True
  dtype: Any = None  # The computation's; None: the input's.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.dtype is not None:
      x = x.astype(self.dtype)
    k = self.kernel_size[0]
    if (tuple(self.kernel_size) != (k, k) or k not in _PADDINGS
        or tuple(self.strides) != (2, 2) or self.padding != _PADDINGS[k]):
      raise ValueError(
          f'SubpixelConvTranspose supports kernel (4, 4) with padding '
          f'((2, 2), (2, 2)) or (2, 2) with SAME, stride 2; got '
          f'{self.kernel_size}, {self.padding}, {self.strides}')
    cin, cout = x.shape[-1], self.features
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, cin, cout)).astype(x.dtype)
    if k == 4 and cout >= PHASES_MIN_FEATURES:
      y = _upconv_phases(x, kernel)
    else:
      y = _upconv_window(x, kernel)
    n, h, _, w, _, _ = y.shape  # [n, h, py, w, px, out]
    y = y.reshape(n, 2 * h, 2 * w, cout)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (cout,))
    return y


def _upconv_window(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 'window' form, as [n, h, py, w, px, out]."""
  k, _, cin, cout = kernel.shape
  taps, pad = _SUBPIXEL_TAPS[k]
  window = taps.shape[1]
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # Tap k is zero.
  # [py, dy, px, dx, in, out] -> [dy, dx, in, (py, px, out)]
  w = padded[taps[:, :, None, None], taps[None, None, :, :]]
  w = w.transpose(1, 3, 4, 0, 2, 5).reshape(window, window, cin, 4 * cout)
  y = _conv(x, w, ((pad, pad), (pad, pad)))
  n, h, wd, _ = y.shape
  return y.reshape(n, h, wd, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)


def _upconv_phases(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 'phases' form (k=4), as [n, h, py, w, px, out]."""
  rows = []
  for py in (0, 1):
    taps_y, pad_y = _PHASE_TAPS[py]
    parities = []
    for px in (0, 1):
      taps_x, pad_x = _PHASE_TAPS[px]
      parities.append(_conv(x, kernel[taps_y][:, taps_x], (pad_y, pad_x)))
    rows.append(jnp.stack(parities, 3))  # [n, h, w, px, out]
  return jnp.stack(rows, 2)
