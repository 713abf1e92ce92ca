"""Readers for the standard MNIST and CIFAR-10 distribution files (numpy only).

Layout under a data folder (what ``../shared/data/prepare.py DEST`` writes):

  mnist/{train,t10k}-images-idx3-ubyte.gz, mnist/{train,t10k}-labels-idx1-ubyte.gz
  cifar10/cifar-10-batches-bin/data_batch_{1..5}.bin, .../test_batch.bin

Every file is checked (magic number, header, size against the counts its
header declares, images against labels, label range) and a bad one raises
`DataError` naming the file and what was expected. The official files hold
60,000/10,000 MNIST and 50,000/10,000 CIFAR-10 examples; smaller folders of
the same format (the tests write some) are read as well.
"""

import gzip
import os
import pathlib
import zlib
from typing import NamedTuple, Sequence

import numpy as np

from mixae_jax.errors import DataError

NUM_CLASSES = 10
MNIST_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
CIFAR_DIR = pathlib.Path('cifar10', 'cifar-10-batches-bin')
CIFAR_FILES = {
    'train': tuple(f'data_batch_{i}.bin' for i in range(1, 6)),
    'test': ('test_batch.bin',),
}
CIFAR_RECORD_BYTES = 1 + 32 * 32 * 3  # label byte, then R, G, B planes.
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


# Where set-up (`make`, or `python ../shared/data/prepare.py .cache/data`)
# writes the standard files, relative to the repository.
SETUP_FOLDER = pathlib.Path('.cache') / 'data'


def default_folder() -> str:
  """The data folder a config uses unless it names one.

  ``MIXAE_DATA_DIR`` if set; else the folder set-up wrote, under the current
  folder or beside the package's source (the repository an editable install
  runs from); else '' (no folder: tfds then).
  """
  if os.environ.get('MIXAE_DATA_DIR'):
    return os.environ['MIXAE_DATA_DIR']
  for root in (pathlib.Path.cwd(), pathlib.Path(__file__).parents[2]):
    if (root / SETUP_FOLDER).is_dir():
      return str((root / SETUP_FOLDER).resolve())
  return ''


class Split(NamedTuple):
  """uint8 images with their int32 labels for one split of one dataset."""
  images: np.ndarray
  labels: np.ndarray


def expected_files(data_dir: str | pathlib.Path,
                   datasets: Sequence[str] = ('mnist', 'cifar10')
                   ) -> list[pathlib.Path]:
  """The files a local data folder holds for `datasets` (by default both)."""
  root = pathlib.Path(data_dir)
  files = []
  if 'mnist' in datasets:
    files += [root / 'mnist' / name for pair in MNIST_FILES.values()
              for name in pair]
  if 'cifar10' in datasets:
    files += [root / CIFAR_DIR / name for names in CIFAR_FILES.values()
              for name in names]
  return files


def missing_files(data_dir: str | pathlib.Path,
                  datasets: Sequence[str] = ('mnist', 'cifar10')
                  ) -> list[pathlib.Path]:
  """The expected files of `datasets` that are absent from `data_dir`."""
  return [f for f in expected_files(data_dir, datasets) if not f.is_file()]


def _read_gzip(path: pathlib.Path) -> bytes:
  try:
    with gzip.open(path, 'rb') as f:
      return f.read()
  except FileNotFoundError:
    raise DataError(f'{path} is missing; a local data folder needs the '
                    'standard MNIST .gz files under mnist/') from None
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f'{path} is not a valid gzip file ({e}); re-create it, e.g. '
                    'with `python ../shared/data/prepare.py DEST`') from None


def read_idx(path: str | pathlib.Path, *, magic: int) -> np.ndarray:
  """Reads one gzipped IDX file (MNIST's format) and validates it.

  Args:
    path: the ``*-ubyte.gz`` file.
    magic: 2051 for an images file, 2049 for a labels file.

  Returns:
    uint8 [N, 28, 28] images or uint8 [N] labels, N from the header.

  Raises:
    DataError: the file is missing, not gzip, has the wrong magic number or
      image size, or holds more or fewer bytes than its header declares.
  """
  path = pathlib.Path(path)
  raw = _read_gzip(path)
  ndim = 3 if magic == _IDX_IMAGES_MAGIC else 1
  header_len = 4 * (1 + ndim)
  if len(raw) < header_len:
    raise DataError(f'{path} is truncated: {len(raw)} bytes, shorter than its '
                    f'{header_len}-byte IDX header')
  header = np.frombuffer(raw[:header_len], dtype='>u4')
  if header[0] != magic:
    raise DataError(f'{path} has magic number {header[0]}, expected {magic} '
                    f'(an IDX {"images" if ndim == 3 else "labels"} file)')
  dims = tuple(int(d) for d in header[1:])
  if dims[0] == 0 or (ndim == 3 and dims[1:] != (28, 28)):
    raise DataError(f'{path} declares shape {dims}, expected '
                    f'({"N, 28, 28" if ndim == 3 else "N"}) with N > 0')
  size = int(np.prod(dims))
  if len(raw) != header_len + size:
    raise DataError(f'{path} is truncated or padded: {len(raw) - header_len} '
                    f'data bytes, but its header declares {dims} = {size}')
  return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _check_labels(labels: np.ndarray, path: pathlib.Path) -> np.ndarray:
  if labels.size and labels.max() >= NUM_CLASSES:
    raise DataError(f'{path} has label {int(labels.max())}; labels must be in '
                    f'0..{NUM_CLASSES - 1}')
  return labels.astype(np.int32)


def read_mnist(data_dir: str | pathlib.Path, split: str) -> Split:
  """Reads one MNIST split ('train' or 'test') from ``data_dir/mnist``."""
  images_name, labels_name = MNIST_FILES[split]
  folder = pathlib.Path(data_dir) / 'mnist'
  images = read_idx(folder / images_name, magic=_IDX_IMAGES_MAGIC)
  labels = read_idx(folder / labels_name, magic=_IDX_LABELS_MAGIC)
  if len(images) != len(labels):
    raise DataError(f'{folder / images_name} holds {len(images)} images but '
                    f'{folder / labels_name} {len(labels)} labels; they must '
                    'match')
  return Split(images, _check_labels(labels, folder / labels_name))


def read_cifar_batch(path: str | pathlib.Path) -> Split:
  """Reads one CIFAR-10 binary batch file and validates its size and labels.

  Returns:
    uint8 [N, 32, 32, 3] images (HWC) and their labels; N is 10,000 in the
    official files.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f'{path} is missing; a local data folder needs the CIFAR-10 '
                    f'binary batches under {CIFAR_DIR}/')
  size = path.stat().st_size
  if size == 0 or size % CIFAR_RECORD_BYTES:
    raise DataError(f'{path} has {size} bytes, not a whole number of '
                    f'{CIFAR_RECORD_BYTES}-byte records (official batches: '
                    f'{10_000 * CIFAR_RECORD_BYTES} bytes); the file is '
                    'truncated or not a CIFAR-10 batch')
  records = np.fromfile(path, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
  labels = _check_labels(records[:, 0], path)
  # Each record stores the R, G and B planes one after another (CHW).
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return Split(np.ascontiguousarray(images), labels)


def read_cifar10(data_dir: str | pathlib.Path, split: str) -> Split:
  """Reads one CIFAR-10 split ('train' or 'test') from the binary batches."""
  folder = pathlib.Path(data_dir) / CIFAR_DIR
  parts = [read_cifar_batch(folder / name) for name in CIFAR_FILES[split]]
  return Split(np.concatenate([p.images for p in parts]),
               np.concatenate([p.labels for p in parts]))


# The reader of each dataset's split, by name (`sources.DATASETS`).
READERS = {'mnist': read_mnist, 'cifar10': read_cifar10}


# -- A folder of a user's own images ------------------------------------------

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# The fewest images a split may hold.
MIN_SPLIT_IMAGES = 2


def folder_files(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """The PNG and JPEG files under `folder` (any depth), sorted."""
  return sorted(p for p in pathlib.Path(folder).rglob('*')
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_splits(folder: str | pathlib.Path, test_fraction: float
                  ) -> dict[str, list[pathlib.Path]]:
  """Which files of a folder source are its train and its test split.

  With ``train/`` and ``test/`` subfolders, theirs; otherwise every k-th
  file by name (k = round(1 / test_fraction)) is a test file.

  Raises:
    DataError: no folder, no images, or a split of fewer than
      `MIN_SPLIT_IMAGES`.
  """
  root = pathlib.Path(folder).expanduser()
  what = f'the folder source {folder}'
  if not root.is_dir():
    raise DataError(f'{what} ' + ('is a file, not a folder' if root.exists()
                                  else 'does not exist')
                    + "; name a folder of PNG or JPEG images ('folder:PATH')")
  subfolders = (root / 'train').is_dir() and (root / 'test').is_dir()
  if subfolders:
    splits = {split: folder_files(root / split) for split in ('train', 'test')}
  else:
    files = folder_files(root)
    if not files:
      raise DataError(f'{what} holds no PNG or JPEG images; put the images '
                      'there (any depth), or train/ and test/ subfolders')
    step = max(2, round(1 / test_fraction))
    splits = {'train': [f for i, f in enumerate(files) if i % step],
              'test': files[::step]}
  for split, files in splits.items():
    if len(files) < MIN_SPLIT_IMAGES:
      hint = ('add images, or raise data.test_fraction'
              if split == 'test' and not subfolders else 'add images')
      raise DataError(f'{what} has {len(files)} {split} image(s); each split '
                      f'needs at least {MIN_SPLIT_IMAGES}: {hint}')
  return splits


def read_folder(folder: str | pathlib.Path, split: str, size: int,
                test_fraction: float) -> Split:
  """One split of a folder source: RGB images resized to size x size.

  Returns:
    uint8 [N, size, size, 3] images, and labels all 0 (a folder has no
    classes).

  Raises:
    DataError: see `folder_splits`; or a file that is not an image.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  images = []
  for path in folder_splits(folder, test_fraction)[split]:
    try:
      with Image.open(path) as img:
        img = img.convert('RGB')
        if img.size != (size, size):
          img = img.resize((size, size), Image.BILINEAR)
        images.append(np.asarray(img, np.uint8))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
      raise DataError(f'{path} is not an image Pillow can read ({e}); remove '
                      'it from the folder source, or replace it with a PNG '
                      'or JPEG') from None
  return Split(np.stack(images), np.zeros(len(images), np.int32))
