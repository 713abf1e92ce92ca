"""The one preprocessing function that turns dataset images into mixtures.

Training (inside the jitted step), evaluation, the tests and users all call
`make_mixtures`, so the task's definition lives in exactly one place:

  * scale uint8 pixels to [0, 1];
  * resize the MNIST digit 28x28 -> 32x32 with bilinear interpolation
    (half-pixel centres, edges clamped: the convention of PIL, TF2 and
    PyTorch's ``align_corners=False``);
  * repeat the digit to 3 channels;
  * mixture = (digit + cifar) / 2.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

IMAGE_SIZE = 32
MNIST_SIZE = 28


class Mixtures(NamedTuple):
  """A batch of mixtures and the two sources they were made from.

  All three are float32 [N, 32, 32, 3] in [0, 1].
  """
  mixture: jax.Array
  digit: jax.Array
  cifar: jax.Array


def digits_to_rgb32(digits: jax.Array) -> jax.Array:
  """Scales uint8 MNIST digits to [0, 1], resizes them to 32x32 and repeats to RGB.

  Args:
    digits: uint8 [N, 28, 28] (or [N, 28, 28, 1]) MNIST images.

  Returns:
    float32 [N, 32, 32, 3] in [0, 1].
  """
  digits = jnp.asarray(digits)
  if digits.ndim == 4 and digits.shape[-1] == 1:
    digits = digits[..., 0]
  if digits.ndim != 3:
    raise ValueError(f'digits must be [N, H, W] uint8, got shape {digits.shape}')
  x = digits.astype(jnp.float32) / 255.0
  if x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
    # Upsampling, so antialiasing does not apply; jax's bilinear kernel with
    # half-pixel centres renormalises at the border, i.e. clamps the edges.
    x = jax.image.resize(x, (x.shape[0], IMAGE_SIZE, IMAGE_SIZE), 'bilinear')
  x = jnp.clip(x, 0.0, 1.0)
  return jnp.repeat(x[..., None], 3, axis=-1)


def cifar_to_float(images: jax.Array) -> jax.Array:
  """Scales uint8 [N, 32, 32, 3] CIFAR images to float32 in [0, 1]."""
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
    raise ValueError(
        f'CIFAR images must be [N, 32, 32, 3] uint8, got shape {images.shape}')
  return images.astype(jnp.float32) / 255.0


def make_mixtures(digits: jax.Array, images: jax.Array) -> Mixtures:
  """Builds the task's mixtures from uint8 MNIST digits and CIFAR-10 images.

  Works on numpy or jax arrays, inside or outside `jax.jit`.

  Args:
    digits: uint8 [N, 28, 28] MNIST digits (32x32 digits are accepted as is).
    images: uint8 [N, 32, 32, 3] CIFAR-10 images.

  Returns:
    `Mixtures(mixture, digit, cifar)`, each float32 [N, 32, 32, 3] in [0, 1].
  """
  digit = digits_to_rgb32(digits)
  cifar = cifar_to_float(images)
  if digit.shape[0] != cifar.shape[0]:
    raise ValueError(f'got {digit.shape[0]} digits but {cifar.shape[0]} images; '
                     'pairs need the same number of each')
  return Mixtures(mixture=(digit + cifar) / 2.0, digit=digit, cifar=cifar)
