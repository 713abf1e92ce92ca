"""Turning a drawing or a photo of a digit into an MNIST-style 28x28 digit.

MNIST's digits were made so: the ink's bounding box scaled (anti-aliased,
aspect ratio kept) to fit a 20x20 box, then placed in a 28x28 field so that
the ink's centre of mass sits at the field's centre. A digit drawn with a mouse
on a large canvas, or photographed dark on light, goes through the same steps
here, so the separator sees the kind of digit it was trained on.
"""

import numpy as np
from PIL import Image

from mixae_jax import plots
from mixae_jax.data import preprocessing
from mixae_jax.errors import InputError

FIELD = preprocessing.MNIST_SIZE  # 28
BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 field.
# Ink below this (of 1) is background: anti-aliased canvas edges, JPEG noise.
INK_THRESHOLD = 0.1


def ink_from_rgba(picture: np.ndarray) -> np.ndarray:
  """The ink of a drawing: float32 [H, W] in [0, 1], 1 where it is darkest.

  A canvas drawing is dark strokes on a transparent or white background, so
  the picture is laid over white and its darkness is the ink.

  Args:
    picture: uint8 [H, W], [H, W, 3] or [H, W, 4].
  """
  x = np.asarray(picture, np.float32) / 255.0
  if x.ndim == 2:
    return 1.0 - x
  alpha = x[..., 3:4] if x.shape[-1] == 4 else 1.0
  rgb = x[..., :3] * alpha + (1.0 - alpha)  # Over white.
  return 1.0 - rgb.mean(axis=-1)


def digit_from_picture(picture: np.ndarray, keep_mnist: bool = True
                       ) -> tuple[np.ndarray, list[str]]:
  """A digit for the separator from a drawing, a photo or an MNIST file.

  Args:
    picture: uint8 [H, W], [H, W, 3] or [H, W, 4]: bright strokes on a dark
      background (MNIST's way) or dark strokes on a light or transparent one.
    keep_mnist: keep a 28x28 or 32x32 picture of bright strokes on black as
      it is (a digit file such as ``--mode=separate --digit`` takes).

  Returns:
    uint8 [28, 28] (or the kept [32, 32]) and notes on what was done to it.

  Raises:
    InputError: there is no ink.
  """
  ink = ink_from_rgba(picture)
  border = np.concatenate([ink[0], ink[-1], ink[:, 0], ink[:, -1]])
  bright_on_dark = float(np.median(border)) > 0.5  # The border is background.
  if bright_on_dark:
    ink = 1.0 - ink
  if keep_mnist and bright_on_dark and ink.shape in ((28, 28), (32, 32)):
    return plots.to_uint8(ink), []
  notes = [] if bright_on_dark else ['dark ink on light taken as MNIST\'s '
                                     'bright ink on black']
  return mnist_style(ink), notes + ['scaled to 20x20 and centred in 28x28 as '
                                    'MNIST\'s digits are']


def mnist_style(ink: np.ndarray) -> np.ndarray:
  """Scales and centres a digit's ink as MNIST's digits are.

  Args:
    ink: float [H, W], ink in [0, 1] (1 = full stroke) on a 0 background.

  Returns:
    uint8 [28, 28]: bright strokes on black, fitting a 20x20 box, centred
    on the centre of mass.

  Raises:
    InputError: there is no ink (an empty canvas).
  """
  ink = np.clip(np.asarray(ink, np.float32), 0.0, 1.0)
  rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
  cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
  if not rows.size:
    raise InputError('the canvas is empty: draw a digit first (or choose '
                     'another digit source)')
  crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  scale = BOX / max(crop.shape)
  height = max(1, round(crop.shape[0] * scale))
  width = max(1, round(crop.shape[1] * scale))
  # Pillow's area-averaging resize is the anti-aliasing MNIST describes.
  box = np.asarray(Image.fromarray(crop, mode='F').resize(
      (width, height), Image.BOX), np.float32)
  field = np.zeros((FIELD, FIELD), np.float32)
  top, left = _centring_offset(box)
  field[top:top + height, left:left + width] = box
  return plots.to_uint8(field)


def _centring_offset(box: np.ndarray) -> tuple[int, int]:
  """Where `box` goes in the field so its centre of mass is at the centre."""
  total = box.sum()
  offsets = []
  for axis, size in ((1, box.shape[0]), (0, box.shape[1])):
    profile = box.sum(axis=axis)
    centre_of_mass = float((profile * np.arange(size)).sum() / total)
    # Pixel i covers [i, i + 1); the field's centre is at FIELD / 2.
    offset = round(FIELD / 2 - (centre_of_mass + 0.5))
    offsets.append(int(np.clip(offset, 0, FIELD - size)))
  return offsets[0], offsets[1]
