"""What the demo page does, without the page: choose sources, mix, separate, score.

`DemoModel` holds a restored `Separator` and, when the data is there, the
MNIST and CIFAR-10 test splits. Its methods take what the page's widgets give
(a source's name, an index, a class, a drawing, an uploaded file) and return
uint8 sources or a `Separation`; bad input raises `InputError` with a
message the page shows. It mixes, separates and scores through
`Separator.mix_and_separate`, as ``--mode=separate`` does, and needs no web
library, so the tests call it directly.
"""

import dataclasses
import os
import pathlib
import time

from absl import logging
import numpy as np
from PIL import Image, UnidentifiedImageError

from mixae_jax import config_io
from mixae_jax.apps import drawn_digits
from mixae_jax.apps import image_io
from mixae_jax.data import pipeline
from mixae_jax.data import preprocessing
from mixae_jax.data import sources
from mixae_jax.errors import DataError, InputError
from mixae_jax.inference import Separator

RANDOM, BY_INDEX, BY_CLASS, DRAW, UPLOAD = (
    'random', 'by index', 'by class', 'draw', 'upload')
DIGIT_SOURCES = (RANDOM, BY_INDEX, BY_CLASS, DRAW, UPLOAD)
IMAGE_SOURCES = (RANDOM, BY_INDEX, BY_CLASS, UPLOAD)
DIGIT_CLASSES = tuple(str(k) for k in range(10))
IMAGE_CLASSES = pipeline.CIFAR10_CLASSES


@dataclasses.dataclass
class Separation:
  """One separation, as the page shows it (float32 [32, 32, 3] in [0, 1])."""
  mixture: np.ndarray
  digit: np.ndarray
  image: np.ndarray
  true_digit: np.ndarray | None = None
  true_image: np.ndarray | None = None
  # {'digit': {'psnr': .., 'ssim': ..}, 'image': {...}} when truths are known.
  scores: dict[str, dict[str, float]] | None = None
  seconds: float = 0.0  # Mixing, separating and scoring, on the server.


class DemoModel:
  """A separator and the test data, behind the demo page's controls."""

  def __init__(self, separator: Separator,
               test_sets: pipeline.Datasets | None = None,
               data_problem: str | None = None, seed: int | None = None):
    """Args:
      separator: the model.
      test_sets: the MNIST / CIFAR-10 test splits, or None.
      data_problem: why `test_sets` is None, for the page.
      seed: for the random choices (None: fresh each start).
    """
    self.separator = separator
    self.test_sets = test_sets
    self.data_problem = data_problem
    self._rng = np.random.default_rng(seed)

  @classmethod
  def restore(cls, workdir: str | os.PathLike[str]) -> 'DemoModel':
    """Loads a run's model and, if it can, the test data; compiles once.

    Raises:
      CheckpointError: `workdir` holds no usable model.
    """
    separator = Separator.restore(workdir, batch_size=1)
    if separator.pair != sources.DEFAULT:
      # The page draws digits and picks CIFAR-10 classes: the default pair's.
      raise InputError(
          f'{workdir} separates {"+".join(separator.pair.names)}; the demo '
          'page serves mnist+cifar10 models only: use --mode=separate (or '
          'Separator in Python) for this one')
    config = config_io.load(workdir)
    try:
      test_sets, problem = pipeline.load_datasets(config.data,
                                                  with_train=False), None
    except DataError as e:
      test_sets, problem = None, str(e)
      logging.warning('No test data for the demo: %s', problem)
    model = cls(separator, test_sets, problem)
    model.warm_up()
    return model

  def warm_up(self) -> None:
    """Compiles every path a request takes, so that none waits for XLA."""
    image = np.zeros((32, 32, 3), np.uint8)
    for size in (preprocessing.MNIST_SIZE, preprocessing.IMAGE_SIZE):
      self.mix_and_separate(np.zeros((size, size), np.uint8), image)
    self.separator(np.zeros((32, 32, 3), np.float32))

  # The sources.

  def _split(self, what: str):
    if self.test_sets is None:
      raise InputError(f'no test data, so no test {what} to choose: '
                       f'{self.data_problem}. Restart the demo with the data '
                       'in place; drawing and uploading work without it')
    return (self.test_sets.first_test if what == 'digit'
            else self.test_sets.second_test)

  def _pick(self, what: str, how: str, index, label: str | None,
            names: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """A test digit or image, chosen at random, by index or by class."""
    split = self._split(what)
    dataset = 'MNIST' if what == 'digit' else 'CIFAR-10'
    n = len(split.images)
    if how == BY_INDEX:
      if index is None or float(index) != int(float(index)):
        raise InputError(f'the {what} index must be a whole number from 0 to '
                         f'{n - 1:,}, got {index!r}')
      index = int(float(index))
      if not 0 <= index < n:
        raise InputError(f'{what} index {index:,} is out of range: the '
                         f'{dataset} test split has {n:,} (0 to {n - 1:,})')
    elif how == BY_CLASS:
      if label not in names:
        raise InputError(f'choose a {what} class, one of {", ".join(names)}')
      index = int(self._rng.choice(
          np.flatnonzero(split.labels == names.index(label))))
    else:
      index = int(self._rng.integers(n))
    return split.images[index], (f'{dataset} test {what} #{index} '
                                 f'({names[split.labels[index]]})')

  def digit(self, how: str, index=None, label: str | None = None,
            drawing: np.ndarray | None = None,
            upload: str | None = None) -> tuple[np.ndarray, str]:
    """The digit the page's controls name: uint8 [28, 28] (or [32, 32]).

    Args:
      how: one of `DIGIT_SOURCES`.
      index: the test digit's index, for BY_INDEX.
      label: the class ('0'..'9'), for BY_CLASS.
      drawing: the canvas, uint8 [H, W, 4] (dark strokes), for DRAW.
      upload: an image file's path, for UPLOAD.

    Returns:
      The digit and a description of where it came from.
    """
    if how == DRAW:
      if drawing is None:
        raise InputError('the canvas is empty: draw a digit first (or choose '
                         'another digit source)')
      digit, notes = drawn_digits.digit_from_picture(drawing, keep_mnist=False)
      return digit, 'your drawing, ' + notes[-1]
    if how == UPLOAD:
      digit, notes = drawn_digits.digit_from_picture(
          np.asarray(_open_upload(upload, 'digit').convert('RGBA')))
      return digit, f'{pathlib.Path(upload).name}' + ''.join(
          f'; {n}' for n in notes)
    return self._pick('digit', how, index, label, DIGIT_CLASSES)

  def image(self, how: str, index=None, label: str | None = None,
            upload: str | None = None) -> tuple[np.ndarray, str]:
    """The image the page's controls name: uint8 [32, 32, 3]; see `digit`."""
    if how == UPLOAD:
      picture = _open_upload(upload, 'image')
      image = image_io.image_to_array(picture, 'the uploaded image', 'image',
                                      resize=True)
      note = ('' if picture.size == (32, 32) else
              f'; resized from {picture.size[0]}x{picture.size[1]} to 32x32')
      return image, pathlib.Path(upload).name + note
    return self._pick('image', how, index, label, IMAGE_CLASSES)

  # Separation.

  def mix_and_separate(self, digit: np.ndarray,
                       image: np.ndarray) -> Separation:
    """Mixes uint8 sources as training does, separates, scores
    (`Separator.mix_and_separate`)."""
    start = time.perf_counter()
    result = self.separator.mix_and_separate(digit[None], image[None])
    scores = {source: {name: float(s[name][0]) for name in ('psnr', 'ssim')}
              for source, s in result.scores.items()}
    return Separation(mixture=result.mixture[0], digit=result.digit[0],
                      image=result.image[0], true_digit=result.true_digit[0],
                      true_image=result.true_image[0], scores=scores,
                      seconds=time.perf_counter() - start)

  def separate_upload(self, upload: str | None,
                      resize: bool = False) -> Separation:
    """Separates an uploaded 32x32 RGB mixture, as ``--mode=separate``."""
    picture = _open_upload(upload, 'mixture')
    mixture = image_io.image_to_array(
        picture, 'the uploaded mixture', 'mixture', resize=resize,
        resize_hint="or tick 'resize to 32x32'").astype(np.float32) / 255
    start = time.perf_counter()
    digit, image = self.separator(mixture)
    return Separation(mixture=mixture, digit=digit, image=image,
                      seconds=time.perf_counter() - start)


def _open_upload(path: str | None, what: str) -> Image.Image:
  """An uploaded file as a loaded Pillow image, or a message saying why not."""
  if not path:
    raise InputError(f'no {what} uploaded: choose an image file (PNG or JPEG)')
  name = pathlib.Path(path).name
  try:
    with Image.open(path) as picture:
      picture.load()
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
    raise InputError(f'the uploaded {what} ({name}) is not an image file; '
                     'upload a PNG or JPEG') from None
  return picture
