"""The two sources a run separates, and the image layout they share.

``config.data.sources`` names the pair: ``('mnist', 'cifar10')`` (the
default task), or any two of the datasets in `DATASETS`, the same one twice
included. A `Pair` says what follows from the names:

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
from typing import Sequence

from mixae_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A named image dataset, as its files store it.

  Attributes:
    name: what ``config.data.sources`` calls it.
    size: the images' side in pixels (square images).
    channels: 1 (grey) or 3 (RGB).
    classes: the class names, by label.
  """
  name: str
  size: int
  channels: int
  classes: tuple[str, ...]


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
  def from_names(cls, names: Sequence[str]) -> 'Pair':
    """The pair ``config.data.sources`` names.

    Raises:
      ConfigError: not two names, or a name that is not in `DATASETS`.
    """
    if isinstance(names, str) or len(names) != 2:
      raise ConfigError(f'data.sources={names!r} must name two sources, e.g. '
                        "('mnist', 'cifar10')")
    for name in names:
      if name not in DATASETS:
        raise ConfigError(f'data.sources names {name!r}, which is unknown; '
                          f'use two of {tuple(DATASETS)} (the same one twice '
                          'included)')
    return cls(DATASETS[names[0]], DATASETS[names[1]])

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
    """Where each source's scores are filed: its dataset's name, or with
    one dataset twice, the name numbered (``mnist_1``, ``mnist_2``)."""
    if self.permutation_invariant:
      return (f'{self.first.name}_1', f'{self.first.name}_2')
    return self.names

  @property
  def layout(self) -> Layout:
    return Layout(max(self.first.size, self.second.size),
                  max(self.first.channels, self.second.channels))


# The default task's pair, and the layout of everything built before sources
# were a choice.
DEFAULT = Pair.from_names(('mnist', 'cifar10'))
