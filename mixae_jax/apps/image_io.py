"""Reading users' image files for separation, with one-line errors.

Mixtures and CIFAR-like images must be 32x32 RGB; digits 28x28 or 32x32, grey
or RGB. A larger (or otherwise sized) image is refused with a message saying
how to resize it, unless ``resize=True``, which resizes it (bilinear) and says
so in the log. Never silently.
"""

import os
import pathlib

from absl import logging
import numpy as np
from PIL import Image, UnidentifiedImageError

from mixae_jax import atomic_files
from mixae_jax import plots
from mixae_jax.data import sources
from mixae_jax.errors import InputError

_A = {'mixture': 'a mixture', 'image': 'an image', 'digit': 'a digit'}


def expectations(pair: sources.Pair) -> dict[str, tuple[tuple[int, ...], bool]]:
  """What each kind must be for `pair`: a mixture takes the pair's layout;
  'digit' and 'image' stand for its first and second source, at their own
  size or the layout's."""
  layout = pair.layout
  def own(dataset):
    return (tuple(dict.fromkeys((dataset.size, layout.size))),
            dataset.channels == 1)
  return {'mixture': ((layout.size,), layout.channels == 1),
          'digit': own(pair.first), 'image': own(pair.second)}


# What each kind of input must be for the default pair (MNIST, CIFAR-10):
# accepted sizes, and whether it is grey.
KINDS = expectations(sources.DEFAULT)


def read_image(path: str | pathlib.Path, kind: str,
               resize: bool = False,
               pair: sources.Pair = sources.DEFAULT) -> np.ndarray:
  """Reads one image file as uint8 for the separator.

  Args:
    path: a PNG (or any format Pillow reads).
    kind: 'mixture' or 'image' (32x32 RGB) or 'digit' (28x28 / 32x32, grey
      or RGB, returned grey).
    resize: resize an image of another size instead of refusing it.
    pair: the model's sources; for another pair than the default, 'digit'
      and 'image' are its first and second source (`expectations`).

  Returns:
    For the default pair uint8 [32, 32, 3] for 'mixture'/'image' and uint8
    [H, H] grey for 'digit' (H = 28 or 32); a grey kind is [H, H].

  Raises:
    InputError: missing file, not an image, wrong channel count, or wrong
      size without `resize`.
  """
  path = pathlib.Path(path)
  expected = f'expected {_A[kind]} image file, e.g. a PNG'
  if path.is_dir():
    raise InputError(f'{path} is a folder, not an image file ({expected})')
  if not path.is_file():
    raise InputError(f'{path} does not exist ({expected})')
  if not os.access(path, os.R_OK):
    raise InputError(f'{path} cannot be read (permission denied); make it '
                     'readable')
  if not path.stat().st_size:
    raise InputError(f'{path} is empty (0 bytes; {expected})')
  try:
    with Image.open(path) as img:
      img.load()
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise InputError(f'{path} is not an image file Pillow can read ({e}); '
                     f'expected a PNG or JPEG of {_A[kind]}') from None
  return image_to_array(img, str(path), kind, resize,
                        kinds=expectations(pair))


def image_to_array(img: Image.Image, name: str, kind: str,
                   resize: bool = False,
                   resize_hint: str = 'or pass --resize',
                   kinds: dict[str, tuple[tuple[int, ...], bool]] | None = None
                   ) -> np.ndarray:
  """`read_image` for an image already opened (an upload, say).

  Args:
    img: the image.
    name: how messages name it (a path, or e.g. 'the uploaded mixture').
    kind: 'mixture', 'image' or 'digit', as for `read_image`.
    resize: resize an image of another size instead of refusing it.
    resize_hint: how the user asks for resizing, for the message.
    kinds: what each kind must be; `KINDS` (the default pair's) when None.

  Raises:
    InputError: wrong channel count, or wrong size without `resize`.
  """
  sizes, grey = (kinds or KINDS)[kind]
  img = _to_rgb_or_grey(img, name, kind, grey)
  want = (sizes[0], sizes[0])
  if img.size[0] not in sizes or img.size[0] != img.size[1]:
    if not resize:
      shapes = ' or '.join(f'{s}x{s}' for s in sizes)
      file_name = pathlib.Path(name).name
      raise InputError(
          f'{name} is {img.size[0]}x{img.size[1]}; {_A[kind]} must be {shapes}: '
          f'resize it first (e.g. `convert {file_name} -resize {want[0]}x'
          f'{want[1]}! out.png`) {resize_hint}')
    logging.warning('Resizing %s from %dx%d to %dx%d.', name,
                    img.size[0], img.size[1], *want)
    img = img.resize(want, Image.BILINEAR)
  return np.asarray(img, np.uint8)


def _to_rgb_or_grey(img: Image.Image, path: str, kind: str,
                    grey: bool) -> Image.Image:
  """Normalises the colour mode, refusing channel counts that don't fit."""
  mode = img.mode
  if mode in ('P', 'PA'):  # Palette images: look up the colours first.
    img = img.convert('RGBA' if 'A' in mode or 'transparency' in img.info
                      else 'RGB')
    mode = img.mode
  if mode in ('RGBA', 'LA'):
    alpha = np.asarray(img)[..., -1]
    if alpha.min() < 255:
      raise InputError(f'{path} has an alpha channel with transparency ({mode}, '
                       f'{len(mode)} channels); {_A[kind]} must be '
                       f'{"grey or " if grey else ""}RGB without transparency')
    img = img.convert(mode[:-1])
    mode = img.mode
  if mode == '1':
    img, mode = img.convert('L'), 'L'
  if grey:
    if mode in ('L', 'RGB'):
      return img.convert('L')
  elif mode == 'RGB':
    return img
  expected = 'grey (1 channel) or RGB (3 channels)' if grey else 'RGB (3 channels)'
  raise InputError(f'{path} has mode {mode} ({len(img.getbands())} channel(s)); '
                   f'{_A[kind]} must be {expected}')


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
  """Writes a float [H, W, 3] (or grey [H, W, 1]) image in [0, 1] as an
  8-bit PNG, atomically."""
  pixels = plots.to_uint8(image)
  if pixels.shape[-1] == 1:
    pixels = pixels[..., 0]
  with atomic_files.atomic_path(path) as tmp:
    Image.fromarray(pixels).save(tmp)
