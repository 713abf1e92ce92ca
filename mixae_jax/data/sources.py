"""The two sources a run separates, and the image layout they share.

``config.data.sources`` names the pair: ``('mnist', 'cifar10')`` (the
default task), or any two of the datasets in `DATASETS` and folders of a
user's own images (``'folder:PATH'``, `FOLDER`; read by
`local_files.read_folder`, resized to ``config.data.image_size``), the same
one twice included. A `Pair` says what follows from the names:

  * the layout every image of the run takes (`Layout`): the larger side and
    the most channels of the two. MNIST with CIFAR-10 is 32x32 RGB (the
    digit upsampled 28 -> 32 bilinearly and repeated to RGB); MNIST twice
    is MNIST's own 28x28 grey; CIFAR-10 twice 32x32 RGB;
  * whether the pair has roles: two draws from one dataset have no first
    source, so the loss and the scores take, per pair, the better of the two
    assignments (`Pair.permutation_invariant`; utterance-level PIT);
  * the labels the scores are filed under (`Pair.labels`).
"""

import dataclasses
import pathlib
from typing import Any, Sequence

from mixae_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A named image dataset, as its files store it.

  Attributes:
    name: what ``config.data.sources`` calls it.
    size: the images' side in pixels (square images).
    channels: 1 (grey) or 3 (RGB).
    classes: the class names, by label (none for a folder).
  """
  name: str
  size: int
  channels: int
  classes: tuple[str, ...]

  @property
  def folder(self) -> str | None:
    """The folder of a folder source, else None."""
    return self.name[len(FOLDER):] if self.name.startswith(FOLDER) else None

  @property
  def short_name(self) -> str:
    """The dataset's name, or a folder's own name (its last part)."""
    return pathlib.PurePath(self.folder).name if self.folder else self.name

  @property
  def title(self) -> str:
    """Its name as people write it ('MNIST', 'CIFAR-10'), or a folder's
    own name."""
    return _TITLES.get(self.name, self.short_name)


# A source ``'folder:PATH'`` is the PNG and JPEG files under PATH, in RGB.
FOLDER = 'folder:'
# The datasets' names as people write them, for cards and pages.
_TITLES = {'mnist': 'MNIST', 'cifar10': 'CIFAR-10'}

DATASETS = {
    'mnist': Dataset('mnist', 28, 1, tuple(str(d) for d in range(10))),
    'cifar10': Dataset('cifar10', 32, 3, (
        'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
        'horse', 'ship', 'truck')),
}


@dataclasses.dataclass(frozen=True)
class Layout:
  """The side and channels of every image of a run: sources and mixtures."""
  size: int
  channels: int

  @property
  def shape(self) -> tuple[int, int, int]:
    return (self.size, self.size, self.channels)


@dataclasses.dataclass(frozen=True)
class Pair:
  """The two sources of a run (`from_names` builds it from the config)."""
  first: Dataset
  second: Dataset

  @classmethod
  def from_names(cls, names: Sequence[str], image_size: int = 32) -> 'Pair':
    """The pair ``config.data.sources`` names.

    Args:
      names: two names of `DATASETS` or ``'folder:PATH'``.
      image_size: the side a folder's images are resized to.

    Raises:
      ConfigError: not two names, an unknown name, or a folder source
        without a path or with a size outside 8..256.
    """
    if isinstance(names, str) or len(names) != 2:
      raise ConfigError(f'data.sources={names!r} must name two sources, e.g. '
                        "('mnist', 'cifar10')")
    return cls(*(_dataset(name, image_size) for name in names))

  @classmethod
  def from_config(cls, data_config: Any) -> 'Pair':
    """The pair of ``config.data`` (its sources and image_size)."""
    return cls.from_names(data_config.sources, data_config.image_size)

  @property
  def names(self) -> tuple[str, str]:
    return (self.first.name, self.second.name)

  @property
  def datasets(self) -> tuple[Dataset, ...]:
    """Each dataset once, in order."""
    return tuple(dict.fromkeys((self.first, self.second)))

  @property
  def permutation_invariant(self) -> bool:
    """Whether the pair has no roles: both sources are one dataset."""
    return self.first == self.second

  @property
  def labels(self) -> tuple[str, str]:
    """Where each source's scores are filed: its dataset's (or folder's)
    name, or with one name twice, the name numbered (``mnist_1``,
    ``mnist_2``)."""
    first, second = self.first.short_name, self.second.short_name
    if first == second:
      return (f'{first}_1', f'{second}_2')
    return (first, second)

  @property
  def roles(self) -> tuple[str, str]:
    """How files and figures name the two sources: 'digit' and 'image' for
    the default pair, else the labels."""
    return ('digit', 'image') if self == DEFAULT else self.labels

  @property
  def layout(self) -> Layout:
    return Layout(max(self.first.size, self.second.size),
                  max(self.first.channels, self.second.channels))


def _dataset(name: Any, image_size: int) -> Dataset:
  """The `Dataset` a source name stands for."""
  if isinstance(name, str) and name.startswith(FOLDER):
    if not name[len(FOLDER):]:
      raise ConfigError(f"data.sources names {name!r}, a folder source "
                        "without a folder; write 'folder:PATH'")
    if (isinstance(image_size, bool) or not isinstance(image_size, int)
        or not 8 <= image_size <= 256):
      raise ConfigError(f'data.image_size={image_size!r} must be an integer '
                        'in 8..256 (the side folder images are resized to)')
    return Dataset(name, image_size, 3, ())
  if name not in DATASETS:
    raise ConfigError(f'data.sources names {name!r}, which is unknown; '
                      f'use two of {tuple(DATASETS)} or folders of images '
                      "('folder:PATH'), the same one twice included")
  return DATASETS[name]


# The default task's pair, and the layout of everything built before sources
# were a choice.
DEFAULT = Pair.from_names(('mnist', 'cifar10'))
