"""The default separator: a U-Net whose shared encoder feeds twin decoders."""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from mixae_jax.models import heads
from mixae_jax.models.layers import ModuleDef, norm_layer


# The nonlinearity after each normalisation, by ``config.model.activation``.
ACTIVATIONS = {'relu': nn.relu, 'silu': nn.silu, 'gelu': nn.gelu}

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
  """Two 3x3 convolutions, each followed by normalisation and activation."""
  features: int
  norm: str = 'batch'
  conv: ModuleDef = nn.Conv
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
  dtype: Any = None  # The normalisation's output; None: float32.

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    # Normalisation has its own shift; a bias would only duplicate it.
    use_bias = self.norm == 'none'
    for i in range(2):
      x = self.conv(self.features, (3, 3), use_bias=use_bias,
                    name=f'Conv_{i}')(x)
      x = self.activation(norm_layer(self.norm, train, self.dtype)(x))
    return x


def space_to_depth(x: jnp.ndarray, size: int) -> jnp.ndarray:
  """[N, H, W, C] -> [N, H/size, W/size, size*size*C]; identity for size 1."""
  if size == 1:
    return x
  n, h, w, c = x.shape
  x = x.reshape(n, h // size, size, w // size, size, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // size, w // size, -1)


def depth_to_space(x: jnp.ndarray, size: int, channels: int) -> jnp.ndarray:
  """The inverse of `space_to_depth` for `channels` output channels."""
  if size == 1:
    return x
  n, h, w, _ = x.shape
  x = x.reshape(n, h, w, size, size, channels)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * size, w * size, channels)


class GlobalAttention(nn.Module):
  """Multi-head self-attention over every position of a small feature map.

  At the bottleneck (4x4 for 32x32 inputs) each position sees the whole
  image in one layer, which convolutions reach only through depth.
  Pre-normalised and residual, as in a transformer block.
  """
  num_heads: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    n, h, w, c = x.shape
    tokens = nn.LayerNorm(name='LayerNorm_0')(x).reshape(n, h * w, c)
    mixed = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, name='Attention_0')(tokens)
    return x + mixed.reshape(n, h, w, c)


class UNetDecoder(nn.Module):
  """Upsamples the shared bottleneck, merging the shared encoder's skips."""
  widths: Sequence[int]
  out_channels: int
  norm: str = 'batch'
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose
  activation: Callable[[jnp.ndarray], jnp.ndarray] = nn.relu
  dtype: Any = None

  @nn.compact
  def __call__(self, h: jnp.ndarray, skips: Sequence[jnp.ndarray],
               train: bool = False) -> jnp.ndarray:
    levels = zip(reversed(self.widths[:-1]), reversed(skips))
    for i, (features, skip) in enumerate(levels):
      # Named as released checkpoints (pretrained/dual) name them.
      h = self.conv_transpose(features, (2, 2), strides=(2, 2),
                              name=f'UpConv2x_{i}')(h)
      h = jnp.concatenate([h, skip], axis=-1)
      h = ConvBlock(features, self.norm, self.conv, self.activation,
                    self.dtype, name=f'ConvBlock_{i}')(h, train)
    h = self.conv(self.out_channels, (1, 1), name='Conv_0')(h)
    # The estimates, and the head's projections after them, in float32.
    return nn.sigmoid(h.astype(jnp.float32))


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
    attention_heads: heads of a `GlobalAttention` layer after the
      bottleneck's convolutions; 0: none.
    patch_size: 1, or 2 to fold each 2x2 patch of the input into channels
      (space-to-depth, 32x32x3 -> 16x16x12) before the first level and
      unfold the decoders' outputs back: every level then runs at half the
      resolution with the same information.
    activation: the nonlinearity after each normalisation, a key of
      `ACTIVATIONS` ('relu', 'silu' or 'gelu', the tanh form).
    decoders: 'twin' (a digit decoder and an image decoder), or 'shared'
      (one decoder whose outputs hold both estimates' channels: half the
      decoders' cost, and the head then splits them).
    dtype: the activations' and convolutions' dtype (e.g. jnp.bfloat16);
      parameters, normalisation statistics, the outputs and the head stay
      float32.
    conv: the convolution layer (`nn.Conv`, or a form with its parameters).
    conv_transpose: the stride-2 transposed convolution layer.
  """
  widths: Sequence[int] = (32, 64, 128, 256)
  norm: str = 'batch'
  digit_channels: int = 1
  head: str = 'consistent'
  digit_resized_from: int = 28
  attention_heads: int = 0
  patch_size: int = 1
  activation: str = 'relu'
  decoders: str = 'twin'
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    conv, conv_transpose = self.conv, self.conv_transpose
    if self.dtype != jnp.float32:
      conv = functools.partial(conv, dtype=self.dtype)
      conv_transpose = functools.partial(conv_transpose, dtype=self.dtype)
    act = ACTIVATIONS[self.activation]
    skips = []
    h = space_to_depth(x, self.patch_size).astype(self.dtype)
    for i, features in enumerate(self.widths[:-1]):
      h = ConvBlock(features, self.norm, conv, act, self.dtype,
                    name=f'ConvBlock_{i}')(h, train)
      skips.append(h)
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    h = ConvBlock(self.widths[-1], self.norm, conv, act, self.dtype,
                  name=f'ConvBlock_{len(skips)}')(h, train)
    if self.attention_heads:
      h = GlobalAttention(self.attention_heads, name='GlobalAttention_0')(h)
    decoder = functools.partial(UNetDecoder, self.widths, norm=self.norm,
                                conv=conv, conv_transpose=conv_transpose,
                                activation=act, dtype=self.dtype)
    area = self.patch_size ** 2
    image_channels = 0 if self.head == 'derive' else 3
    if self.decoders == 'shared':
      both = depth_to_space(
          decoder((self.digit_channels + image_channels) * area,
                  name='decoder')(h, skips, train),
          self.patch_size, self.digit_channels + image_channels)
      digit = both[..., :self.digit_channels]
      image = both[..., self.digit_channels:] if image_channels else None
    else:
      digit = depth_to_space(decoder(self.digit_channels * area,
                                     name='digit_decoder')(h, skips, train),
                             self.patch_size, self.digit_channels)
      image = (depth_to_space(decoder(3 * area, name='image_decoder')(
          h, skips, train), self.patch_size, 3) if image_channels else None)
    # A grey digit needs one channel; repeat it so every output is RGB.
    digit = jnp.broadcast_to(digit, digit.shape[:-1] + (3,))
    return heads.apply_head(
        self.head, x, digit, image, grey_digit=self.digit_channels == 1,
        digit_resized_from=self.digit_resized_from,
        projection_steps=(heads.PROJECTION_TRAIN_STEPS if train
                          else heads.PROJECTION_STEPS))
