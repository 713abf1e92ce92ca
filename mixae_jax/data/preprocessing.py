"""The one preprocessing function that turns dataset images into mixtures.

Training (inside the jitted step), evaluation, the tests and users all call
`make_mixtures`, so the task's definition lives in exactly one place:

  * scale uint8 pixels to [0, 1];
  * bring each source to the run's layout (`sources.Layout`): a smaller
    image is resized with bilinear interpolation (half-pixel centres, edges
    clamped: the convention of PIL, TF2 and PyTorch's
    ``align_corners=False``), a grey one repeated to RGB; for the default
    pair, the MNIST digit goes 28x28 -> 32x32 and to 3 channels;
  * mixture = (first + second) / 2.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mixae_jax.data import sources

IMAGE_SIZE = 32
MNIST_SIZE = 28


class Mixtures(NamedTuple):
  """A batch of mixtures and the two sources they were made from.

  All three are float32 [N, size, size, channels] in [0, 1] (the run's
  layout; [N, 32, 32, 3] for the default pair: first the digit, second the
  CIFAR-10 image).
  """
  mixture: jax.Array
  first: jax.Array
  second: jax.Array


def to_layout(images: jax.Array, dataset: sources.Dataset,
              layout: sources.Layout, what: str | None = None) -> jax.Array:
  """Scales a dataset's uint8 images to [0, 1] and brings them to `layout`.

  Args:
    images: uint8 [N, S, S] (grey) or [N, S, S, C], with S the dataset's
      side (or the layout's already) and C its channels.
    dataset: the source they come from.
    layout: the run's image layout.
    what: how an error names the images; the dataset's name by default.

  Returns:
    float32 [N, layout.size, layout.size, layout.channels] in [0, 1].
  """
  images = jnp.asarray(images)
  if images.ndim == 3 and dataset.channels == 1:
    images = images[..., None]
  if (images.ndim != 4 or images.shape[1] != images.shape[2]
      or images.shape[1] not in (dataset.size, layout.size)
      or images.shape[-1] != dataset.channels):
    grey = ', 1' if dataset.channels == 1 else f', {dataset.channels}'
    raise ValueError(
        f'{what or dataset.name} images must be [N, {dataset.size}, '
        f'{dataset.size}{grey}] uint8, got shape {images.shape}')
  x = images.astype(jnp.float32) / 255.0
  if x.shape[1] != layout.size:
    # Upsampling, so antialiasing does not apply; jax's bilinear kernel with
    # half-pixel centres renormalises at the border, i.e. clamps the edges.
    x = jax.image.resize(
        x, (x.shape[0], layout.size, layout.size, x.shape[-1]), 'bilinear')
    x = jnp.clip(x, 0.0, 1.0)
  if x.shape[-1] != layout.channels:
    x = jnp.repeat(x, layout.channels, axis=-1)
  return x


def digits_to_rgb32(digits: jax.Array) -> jax.Array:
  """Scales uint8 MNIST digits to [0, 1], resizes them to 32x32 and repeats to RGB.

  Args:
    digits: uint8 [N, 28, 28] (or [N, 28, 28, 1]) MNIST images; 32x32
      digits are taken as they are.

  Returns:
    float32 [N, 32, 32, 3] in [0, 1].
  """
  return to_layout(digits, sources.DATASETS['mnist'], sources.DEFAULT.layout,
                   'digit')


def make_mixtures(first: jax.Array, second: jax.Array,
                  pair: sources.Pair = sources.DEFAULT) -> Mixtures:
  """Builds the task's mixtures from two batches of uint8 source images.

  Works on numpy or jax arrays, inside or outside `jax.jit`.

  Args:
    first: uint8 images of the first source, e.g. [N, 28, 28] MNIST digits.
    second: uint8 images of the second source, e.g. [N, 32, 32, 3] CIFAR-10.
    pair: the run's sources (`sources.Pair`); by default MNIST and CIFAR-10.

  Returns:
    `Mixtures(mixture, first, second)`, each float32 in the pair's layout
    ([N, 32, 32, 3] for the default pair), in [0, 1].
  """
  first = to_layout(first, pair.first, pair.layout)
  second = to_layout(second, pair.second, pair.layout)
  if first.shape[0] != second.shape[0]:
    raise ValueError(f'got {first.shape[0]} first but {second.shape[0]} second '
                     'source images; pairs need the same number of each')
  return Mixtures(mixture=(first + second) / 2.0, first=first, second=second)
