"""The default separator: a U-Net whose shared encoder feeds twin decoders."""

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from mixae_jax.models import heads
from mixae_jax.models.layers import ModuleDef, norm_layer


class ConvBlock(nn.Module):
  """Two 3x3 convolutions, each followed by normalisation and ReLU."""
  features: int
  norm: str = 'batch'
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    # Normalisation has its own shift; a bias would only duplicate it.
    use_bias = self.norm == 'none'
    for i in range(2):
      x = self.conv(self.features, (3, 3), use_bias=use_bias,
                    name=f'Conv_{i}')(x)
      x = nn.relu(norm_layer(self.norm, train)(x))
    return x


class UNetDecoder(nn.Module):
  """Upsamples the shared bottleneck, merging the shared encoder's skips."""
  widths: Sequence[int]
  out_channels: int
  norm: str = 'batch'
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, h: jnp.ndarray, skips: Sequence[jnp.ndarray],
               train: bool = False) -> jnp.ndarray:
    levels = zip(reversed(self.widths[:-1]), reversed(skips))
    for i, (features, skip) in enumerate(levels):
      # Named as released checkpoints (pretrained/dual) name them.
      h = self.conv_transpose(features, (2, 2), strides=(2, 2),
                              name=f'UpConv2x_{i}')(h)
      h = jnp.concatenate([h, skip], axis=-1)
      h = ConvBlock(features, self.norm, self.conv, name=f'ConvBlock_{i}')(
          h, train)
    h = self.conv(self.out_channels, (1, 1), name='Conv_0')(h)
    h = nn.sigmoid(h)
    # A grey digit needs one channel; repeat it so every output is RGB.
    return jnp.broadcast_to(h, h.shape[:-1] + (3,)) if h.shape[-1] == 1 else h


class UNet(nn.Module):
  """A shared U-Net encoder whose skip connections feed both decoders.

  The field defaults are configs/dual.py's model.

  Attributes:
    widths: channels per resolution level (32x32, 16x16, ...); the last
      entry is the bottleneck.
    norm: normalisation after each convolution: 'batch', 'group' or 'none'.
    digit_channels: 1 predicts a grey digit and repeats it to RGB; 3 predicts
      RGB.
    head: how the decoders' outputs become the estimates (`heads.apply_head`);
      with 'derive' there is no image decoder at all.
    digit_resized_from: the size the true digits were upsampled from (28 for
      MNIST), known to the 'consistent' head; 0: not known.
    conv: the convolution layer (`nn.Conv`, or a form with its parameters).
    conv_transpose: the stride-2 transposed convolution layer.
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  norm: str = 'batch'
  digit_channels: int = 1
  head: str = 'consistent'
  digit_resized_from: int = 28
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    skips = []
    h = x
    for i, features in enumerate(self.widths[:-1]):
      h = ConvBlock(features, self.norm, self.conv, name=f'ConvBlock_{i}')(
          h, train)
      skips.append(h)
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    h = ConvBlock(self.widths[-1], self.norm, self.conv,
                  name=f'ConvBlock_{len(skips)}')(h, train)
    decoder = functools.partial(UNetDecoder, self.widths, norm=self.norm,
                                conv=self.conv,
                                conv_transpose=self.conv_transpose)
    digit = decoder(self.digit_channels, name='digit_decoder')(h, skips, train)
    image = (None if self.head == 'derive' else
             decoder(3, name='image_decoder')(h, skips, train))
    return heads.apply_head(
        self.head, x, digit, image, grey_digit=self.digit_channels == 1,
        digit_resized_from=self.digit_resized_from,
        projection_steps=(heads.PROJECTION_TRAIN_STEPS if train
                          else heads.PROJECTION_STEPS))
