"""The reference reports' designs, reproduced as the baselines they were.

`Seed004` is the report this project grew from (references/004): one
encoder, twin bottleneck decoders. `MixtureAE` and `DigitAE` are the earlier
reports' autoencoders (references 001-003), scored on the separation
protocol to show what they recover.
"""

import flax.linen as nn
import jax.numpy as jnp

from mixae_jax.models import heads
from mixae_jax.models.layers import ModuleDef, batch_norm


class Seed004(nn.Module):
  """The reference report's design (`references/004`), reproduced faithfully.

  Encoder: three Conv 4x4 stride 2 (3->64->128->256), each with BatchNorm,
  ReLU and Dropout 0.2; then Dense 512 and Dense 128 (the latent) with
  Dropout 0.5. Each decoder: Dense 512, Dense 4*4*256, then three
  ConvTranspose 4x4 stride 2 (256->128->64->3) with BatchNorm and ReLU, and a
  sigmoid at the end. About 8.5 M parameters.

  Attributes:
    latent_dim: the bottleneck's width.
    dropout: dropout after each encoder convolution.
    latent_dropout: dropout on the latent.
    conv: the convolution layer (`nn.Conv` or a form with its parameters).
    conv_transpose: the transposed convolution layer.
  """
  latent_dim: int = 128
  dropout: float = 0.2
  latent_dropout: float = 0.5
  conv: ModuleDef = nn.Conv
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    h = x
    for features in (64, 128, 256):
      # PyTorch's Conv2d(k=4, s=2, p=1): 32 -> 16 -> 8 -> 4.
      h = self.conv(features, (4, 4), strides=(2, 2),
                    padding=((1, 1), (1, 1)))(h)
      h = batch_norm(train)(h)
      h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(512)(h))
    z = nn.Dense(self.latent_dim)(h)
    z = nn.Dropout(self.latent_dropout, deterministic=not train)(z)
    return (self._decoder(z, train, 'digit'), self._decoder(z, train, 'image'))

  def _decoder(self, z: jnp.ndarray, train: bool, name: str) -> jnp.ndarray:
    h = nn.relu(nn.Dense(512, name=f'{name}_dense1')(z))
    h = nn.relu(nn.Dense(4 * 4 * 256, name=f'{name}_dense2')(h))
    h = h.reshape(h.shape[0], 4, 4, 256)
    for i, features in enumerate((128, 64, 3)):
      # PyTorch's ConvTranspose2d(k=4, s=2, p=1): padding 2 on the dilated
      # input, doubling the size each time.
      h = self.conv_transpose(features, (4, 4), strides=(2, 2),
                              padding=((2, 2), (2, 2)),
                              name=f'{name}_deconv{i}')(h)
      if features != 3:
        h = nn.relu(batch_norm(train, name=f'{name}_bn{i}')(h))
    return nn.sigmoid(h)


class MixtureAE(nn.Module):
  """References 001/002: an autoencoder of the mixture itself, one decoder.

  Reference 002's layers (its weight shapes), on 3-channel 32x32 input:
  Conv 3x3 s2 (16), Conv 3x3 s2 (32), Conv 7x7 valid (64) to a 2x2x64 code;
  then ConvTranspose 7x7 (32), 3x3 s2 (16), 3x3 s2 (3) and a sigmoid. It
  never separates: its one reconstruction is returned as both estimates.
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    del train  # No dropout or normalisation.
    h = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))(x))
    h = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))(h))
    h = nn.Conv(64, (7, 7), padding='VALID')(h)  # 8x8 -> 2x2
    # PyTorch ConvTranspose2d(k, s, p, output_padding=op) pads the dilated
    # input by (k-1-p, k-1-p+op): (6, 6) for k=7, p=0; (1, 2) for k=3, p=op=1.
    h = nn.relu(nn.ConvTranspose(32, (7, 7), padding=((6, 6), (6, 6)))(h))
    h = nn.relu(nn.ConvTranspose(16, (3, 3), strides=(2, 2),
                                 padding=((1, 2), (1, 2)))(h))
    h = nn.ConvTranspose(3, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)))(h)
    recon = nn.sigmoid(h)
    return recon, recon


class DigitAE(nn.Module):
  """Reference 003: a plain MNIST convolutional autoencoder, 64-d latent.

  Encoder: Conv 3x3 s2 (16, 32, 64) with ReLU, then a global average to a
  64-d code. Decoder: ConvTranspose 4x4 (32) to 4x4, then three 4x4 s2 ones
  (16, 8, 1) to 32x32 (the reference's 28x28 layout, one level deeper). The
  output is linear, as in the reference, while training (a sigmoid there
  saturates and the network settles on an all-black digit); at inference it
  is clipped to [0, 1]. It sees the grey (channel-mean) input. On a mixture,
  its output is the digit estimate and the image is derived as
  ``2 * mixture - digit`` (`heads.derive_image`).

  Attributes:
    conv_transpose: the transposed convolution layer of the stride-2 steps.
  """
  conv_transpose: ModuleDef = nn.ConvTranspose

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    h = jnp.mean(x, axis=-1, keepdims=True)
    for features in (16, 32, 64):
      h = nn.relu(nn.Conv(features, (3, 3), strides=(2, 2),
                          padding=((1, 1), (1, 1)))(h))
    z = jnp.mean(h, axis=(1, 2), keepdims=True)  # [N, 1, 1, 64]
    h = nn.relu(nn.ConvTranspose(32, (4, 4), padding=((3, 3), (3, 3)))(z))
    # Named as checkpoints written before the layers were injectable name them.
    up = lambda i, features: self.conv_transpose(
        features, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
        name=f'UpConv2x_{i}')
    for i, features in enumerate((16, 8)):
      h = nn.relu(up(i, features)(h))
    digit = up(2, 1)(h)
    if not train:
      digit = jnp.clip(digit, 0.0, 1.0)
    digit = jnp.broadcast_to(digit, x.shape)
    return digit, heads.derive_image(x, digit)
