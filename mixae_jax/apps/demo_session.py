"""What the demo page does, without the page: choose sources, mix, separate, score.

`DemoModel` holds a restored `Separator` and, when the data is there, the
test splits of its two sources (MNIST and CIFAR-10 for the default model;
any pair a run names, `SourceSlot`). Its methods take what the page's
widgets give (a way of choosing, an index, a class, a drawing, an uploaded
file) and return uint8 sources or a `Separation`; bad input raises
`InputError` with a message the page shows. It mixes, separates and scores
through `Separator.mix_and_separate`, as ``--mode=separate`` does, and needs
no web library, so the tests call it directly.
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
from mixae_jax.data import sources
from mixae_jax.errors import DataError, InputError
from mixae_jax.inference import Separator

RANDOM, BY_INDEX, BY_CLASS, DRAW, UPLOAD = (
    'random', 'by index', 'by class', 'draw', 'upload')


@dataclasses.dataclass(frozen=True)
class SourceSlot:
  """One of the two sources, as the page offers it.

  Attributes:
    kind: 'digit' (the first source) or 'image' (the second): the key of its
      widgets, scores and `image_io` kind, whatever the pair.
    role: how the page names it ('digit', 'image', 'mnist_1', 'textures'...).
    dataset: where its test images come from.
  """
  kind: str
  role: str
  dataset: sources.Dataset

  @property
  def mnist(self) -> bool:
    """Whether it is an MNIST digit: drawn or uploaded digits are made
    MNIST-like (scaled and centred)."""
    return self.dataset.name == 'mnist'

  @property
  def heading(self) -> str:
    """The role as a heading: 'Digit', 'Textures'; 'mnist_1' as it is."""
    return self.role.capitalize() if self.role.isalpha() else self.role

  @property
  def noun(self) -> str:
    return 'digit' if self.mnist else 'image'

  @property
  def ways(self) -> tuple[str, ...]:
    """How the page can choose it: by class only where there are classes,
    drawn only where it is a digit."""
    return ((RANDOM, BY_INDEX) + ((BY_CLASS,) if self.dataset.classes else ())
            + ((DRAW,) if self.mnist else ()) + (UPLOAD,))


def slots(pair: sources.Pair) -> tuple[SourceSlot, SourceSlot]:
  """The page's two sources for a model of `pair`."""
  return tuple(SourceSlot(kind, role, dataset) for kind, role, dataset in
               zip(('digit', 'image'), pair.roles, (pair.first, pair.second)))


@dataclasses.dataclass
class Separation:
  """One separation, as the page shows it (float32 [H, W, C] in [0, 1], the
  model's layout; ``digit``/``image`` are the first and second source)."""
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
      test_sets: the test splits of its sources, or None.
      data_problem: why `test_sets` is None, for the page.
      seed: for the random choices (None: fresh each start).
    """
    self.separator = separator
    self.test_sets = test_sets
    self.data_problem = data_problem
    self.pair = separator.pair
    self.slots = slots(self.pair)
    self._kinds = image_io.expectations(self.pair)
    self._rng = np.random.default_rng(seed)

  @classmethod
  def restore(cls, workdir: str | os.PathLike[str]) -> 'DemoModel':
    """Loads a run's model and, if it can, the test data; compiles once.

    Raises:
      CheckpointError: `workdir` holds no usable model.
    """
    separator = Separator.restore(workdir, batch_size=1)
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
    second = self._blank(self.slots[1], self.pair.second.size)
    for size in self._kinds['digit'][0]:  # Digits of 28 and 32 differ.
      self.mix_and_separate(self._blank(self.slots[0], size), second)
    self.separator(np.zeros(self.pair.layout.shape, np.float32))

  @staticmethod
  def _blank(slot: SourceSlot, size: int) -> np.ndarray:
    channels = () if slot.dataset.channels == 1 else (3,)
    return np.zeros((size, size) + channels, np.uint8)

  # The sources.

  def source(self, kind: str, how: str, index=None, label: str | None = None,
             drawing: np.ndarray | None = None,
             upload: str | None = None) -> tuple[np.ndarray, str]:
    """The source the page's controls name, as uint8 at its dataset's size.

    Args:
      kind: 'digit' for the first source, 'image' for the second (the
        default pair's names; `SourceSlot.kind`).
      how: one of its slot's `ways`.
      index: the test image's index, for BY_INDEX.
      label: its class name, for BY_CLASS.
      drawing: the canvas, uint8 [H, W, 4] (dark strokes), for DRAW.
      upload: an image file's path, for UPLOAD.

    Returns:
      The source (grey [H, W] or RGB [H, W, 3]) and where it came from.
    """
    slot = self._slot(kind)
    if how not in slot.ways:
      raise InputError(f'{how!r} cannot choose the {slot.role}; choose one of '
                       f'{", ".join(slot.ways)}')
    if how == DRAW:
      if drawing is None:
        raise InputError(f'the canvas is empty: draw a {slot.noun} first (or '
                         f'choose another {slot.role} source)')
      digit, notes = drawn_digits.digit_from_picture(drawing, keep_mnist=False)
      return digit, 'your drawing, ' + notes[-1]
    if how == UPLOAD:
      return self._upload(slot, upload)
    return self._pick(slot, how, index, label)

  def _slot(self, kind: str) -> SourceSlot:
    for slot in self.slots:
      if slot.kind == kind:
        return slot
    raise ValueError(f'kind={kind!r}: use digit or image')

  def _upload(self, slot: SourceSlot, upload: str | None
              ) -> tuple[np.ndarray, str]:
    picture = _open_upload(upload, slot.role)
    name = pathlib.Path(upload).name
    if slot.mnist:
      digit, notes = drawn_digits.digit_from_picture(
          np.asarray(picture.convert('RGBA')))
      return digit, name + ''.join(f'; {n}' for n in notes)
    image = image_io.image_to_array(picture, f'the uploaded {slot.role}',
                                    slot.kind, resize=True, kinds=self._kinds)
    size = image.shape[0]
    note = ('' if picture.size == (size, size) else
            f'; resized from {picture.size[0]}x{picture.size[1]} to '
            f'{size}x{size}')
    return image, name + note

  def _pick(self, slot: SourceSlot, how: str, index,
            label: str | None) -> tuple[np.ndarray, str]:
    """A test image of `slot`'s source, at random, by index or by class."""
    if self.test_sets is None:
      raise InputError(f'no test data, so no test {slot.noun} to choose: '
                       f'{self.data_problem}. Restart the demo with the data '
                       'in place; drawing and uploading work without it')
    split = (self.test_sets.first_test if slot.kind == 'digit'
             else self.test_sets.second_test)
    names = slot.dataset.classes
    n = len(split.images)
    if how == BY_INDEX:
      if index is None or float(index) != int(float(index)):
        raise InputError(f'the {slot.role} index must be a whole number from '
                         f'0 to {n - 1:,}, got {index!r}')
      index = int(float(index))
      if not 0 <= index < n:
        raise InputError(f'{slot.role} index {index:,} is out of range: the '
                         f'{slot.dataset.title} test split has {n:,} (0 to {n - 1:,})')
    elif how == BY_CLASS:
      if label not in names:
        raise InputError(f'choose a {slot.role} class, one of '
                         f'{", ".join(names)}')
      index = int(self._rng.choice(
          np.flatnonzero(split.labels == names.index(label))))
    else:
      index = int(self._rng.integers(n))
    about = f'{slot.dataset.title} test {slot.noun} #{index}'
    if names:
      about += f' ({names[split.labels[index]]})'
    return split.images[index], about

  # Separation.

  def mix_and_separate(self, first: np.ndarray,
                       second: np.ndarray) -> Separation:
    """Mixes uint8 sources as training does, separates, scores
    (`Separator.mix_and_separate`)."""
    start = time.perf_counter()
    result = self.separator.mix_and_separate(first[None], second[None])
    scores = {source: {name: float(s[name][0]) for name in ('psnr', 'ssim')}
              for source, s in result.scores.items()}
    return Separation(mixture=result.mixture[0], digit=result.digit[0],
                      image=result.image[0], true_digit=result.true_digit[0],
                      true_image=result.true_image[0], scores=scores,
                      seconds=time.perf_counter() - start)

  def separate_upload(self, upload: str | None,
                      resize: bool = False) -> Separation:
    """Separates an uploaded mixture in the model's layout, as
    ``--mode=separate`` does."""
    picture = _open_upload(upload, 'mixture')
    layout = self.pair.layout
    mixture = image_io.image_to_array(
        picture, 'the uploaded mixture', 'mixture', resize=resize,
        resize_hint=f"or tick 'resize to {layout.size}x{layout.size}'",
        kinds=self._kinds)
    mixture = mixture.reshape(layout.shape).astype(np.float32) / 255
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
