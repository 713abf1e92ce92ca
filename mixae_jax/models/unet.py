"""The default separator: a U-Net whose shared encoder feeds twin decoders."""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from mixae_jax.models import heads
from mixae_jax.models.layers import ModuleDef, batch_norm

# The nonlinearity after each BatchNorm, by ``config.model.activation``
# ('gelu': the tanh form).
ACTIVATIONS = {'relu': nn.relu, 'gelu': nn.gelu}

# How the decoders are arranged, by ``config.model.decoders``.
DECODERS = ('twin', 'shared')


def is_edge_layer(path: Sequence[str]) -> bool:
  """Whether the layer at `path` in a U-Net's parameters touches the image.

  The encoder's first convolution reads the image, and each decoder's last
  (1x1) convolution writes an estimate; every other layer is hidden.
  `path` is the layer's module names, e.g. ``('digit_decoder', 'Conv_0')``.
  """
  path = tuple(path)
  return path == ('ConvBlock_0', 'Conv_0') or (
      len(path) == 2 and path[0].endswith('decoder') and path[1] == 'Conv_0')


class ConvBlock(nn.Module):
  """Two 3x3 convolutions, each followed by BatchNorm and the activation."""
  features: int
  conv: ModuleDef
  activation: Callable[[jnp.ndarray], jnp.ndarray]
  dtype: Any  # BatchNorm's output.

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    for i in range(2):
      # BatchNorm has its own shift; a bias would only duplicate it.
      x = self.conv(self.features, (3, 3), use_bias=False, name=f'Conv_{i}')(x)
      x = self.activation(batch_norm(train, dtype=self.dtype)(x))
    return x


class UNetDecoder(nn.Module):
  """Upsamples the shared bottleneck, merging the shared encoder's skips."""
  widths: Sequence[int]
  out_channels: int
  conv: ModuleDef
  conv_transpose: ModuleDef
  activation: Callable[[jnp.ndarray], jnp.ndarray]
  dtype: Any

  @nn.compact
  def __call__(self, h: jnp.ndarray, skips: Sequence[jnp.ndarray],
               train: bool) -> jnp.ndarray:
    levels = zip(reversed(self.widths[:-1]), reversed(skips))
    for i, (features, skip) in enumerate(levels):
      # Named as released checkpoints (pretrained/dual) name them.
      h = self.conv_transpose(features, (2, 2), strides=(2, 2),
                              name=f'UpConv2x_{i}')(h)
      h = jnp.concatenate([h, skip], axis=-1)
      h = ConvBlock(features, self.conv, self.activation, self.dtype,
                    name=f'ConvBlock_{i}')(h, train)
    h = self.conv(self.out_channels, (1, 1), name='Conv_0')(h)
    # The estimates, and the head's projections after them, in float32.
    return nn.sigmoid(h.astype(jnp.float32))


class UNet(nn.Module):
  """A shared U-Net encoder whose skip connections feed both decoders.

  Built from ``config.model`` by `models.create_model`, which holds no
  defaults of its own: every field comes from the config.

  Takes mixtures of any square size and 1 or 3 channels (the run's layout,
  `sources.Layout`); a side the levels do not halve evenly (MNIST's 28 with
  four levels) is zero-padded inside and the estimates cropped back.

  Attributes:
    widths: channels per resolution level (32x32, 16x16, ...); the last
      entry is the bottleneck.
    digit_channels: the channels the first decoder predicts: 1 (a grey
      source, repeated to the mixture's channels) or the mixture's.
    head: how the decoders' outputs become the estimates (`heads.apply_head`).
    digit_resized_from: the size the true digits were upsampled from (28 for
      MNIST), known to the 'consistent' head; 0: not known.
    activation: the nonlinearity after each BatchNorm, a key of `ACTIVATIONS`.
    decoders: 'twin' (a digit decoder and an image decoder), or 'shared'
      (one decoder whose outputs hold both estimates' channels: half the
      decoders' cost, and the head then splits them).
    dtype: the activations' and convolutions' dtype (e.g. jnp.bfloat16);
      parameters, BatchNorm statistics, the outputs and the head stay
      float32.
    conv: the convolution layer (`nn.Conv`, or a form with its parameters).
    conv_transpose: the stride-2 transposed convolution layer.
  """
  widths: Sequence[int]
  digit_channels: int
  head: str
  digit_resized_from: int
  activation: str
  decoders: str
  dtype: Any
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    conv = functools.partial(self.conv, dtype=self.dtype)
    conv_transpose = functools.partial(self.conv_transpose, dtype=self.dtype)
    act = ACTIVATIONS[self.activation]
    size, channels = x.shape[1], x.shape[-1]
    if self.digit_channels not in (1, channels):
      raise ValueError(f'digit_channels={self.digit_channels} does not fit '
                       f'{channels}-channel mixtures')
    # Each level halves the side: pad it to a multiple of 2^levels.
    step = 2 ** (len(self.widths) - 1)
    pad = -size % step
    before, after = pad // 2, pad - pad // 2
    skips = []
    h = jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
    h = h.astype(self.dtype)
    for i, features in enumerate(self.widths[:-1]):
      h = ConvBlock(features, conv, act, self.dtype,
                    name=f'ConvBlock_{i}')(h, train)
      skips.append(h)
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    h = ConvBlock(self.widths[-1], conv, act, self.dtype,
                  name=f'ConvBlock_{len(skips)}')(h, train)
    decoder = functools.partial(UNetDecoder, self.widths, conv=conv,
                                conv_transpose=conv_transpose, activation=act,
                                dtype=self.dtype)
    if self.decoders == 'shared':
      both = decoder(self.digit_channels + channels, name='decoder')(
          h, skips, train)
      digit, image = both[..., :self.digit_channels], both[..., self.digit_channels:]
    else:
      digit = decoder(self.digit_channels, name='digit_decoder')(h, skips, train)
      image = decoder(channels, name='image_decoder')(h, skips, train)
    digit, image = (y[:, before:before + size, before:before + size]
                    for y in (digit, image))
    # A grey first source needs one channel; repeat it to the mixture's.
    digit = jnp.broadcast_to(digit, digit.shape[:-1] + (channels,))
    return heads.apply_head(
        self.head, x, digit, image, grey_digit=self.digit_channels == 1,
        digit_resized_from=self.digit_resized_from,
        projection_steps=(heads.PROJECTION_TRAIN_STEPS if train
                          else heads.PROJECTION_STEPS))
