"""Where the data comes from, how training pairs are drawn and eval pairs fixed.

A run separates the two sources ``config.data.sources`` names
(`sources.Pair`; MNIST and CIFAR-10 by default). Two places give the same
uint8 arrays (MNIST [N, 28, 28], CIFAR-10 [N, 32, 32, 3], with labels) for
the train and test splits:

  * ``local``: the standard distribution files in ``config.data.dir``
    (see `mixae_jax.local_files`), read with numpy, no TensorFlow needed;
  * ``tfds``: tensorflow-datasets. Reading prepared array_record data needs no
    TensorFlow; downloading and preparing it does (``pip install .[tfds]``).

``auto`` takes ``local`` when the folder holds every file, else ``tfds``. With
neither available it fails at once with a message that says how to get data.

Training pairs are drawn inside the jitted train step from a `TrainPool` kept
on the device, so the host does no per-step work. Eval pairs are fixed by
the sources, ``eval.num_pairs`` and ``eval.pairing_seed`` alone, whatever
the model (`pairing`).
"""

import functools
import importlib.util
import pathlib
import socket
from typing import NamedTuple

from absl import logging
from flax import struct
import jax
import ml_collections
import numpy as np

from mixae_jax.data import local_files
from mixae_jax.data import preprocessing
from mixae_jax.data import sources
from mixae_jax.errors import ConfigError, DataError
from mixae_jax.sharding import put as put_on_mesh
from mixae_jax.data.local_files import Split

SOURCES = ('auto', 'local', 'tfds')
CIFAR10_CLASSES = sources.DATASETS['cifar10'].classes
_HOW_TO_GET_DATA = (
    'set --config.data.dir (or MIXAE_DATA_DIR) to a folder with the standard '
    'MNIST/CIFAR-10 files (`python ../shared/data/prepare.py DIR` writes one), '
    'or install TensorFlow (`pip install ".[tfds]"`) and go online so tfds '
    'can download them')


class Datasets(NamedTuple):
  """Both sources' splits as uint8 arrays on the host (train splits may be
  None); with one dataset twice, its splits twice."""
  first_train: Split | None
  first_test: Split
  second_train: Split | None
  second_test: Split
  pair: sources.Pair = sources.DEFAULT


@struct.dataclass
class TrainPool:
  """The uint8 training images, kept on the device for in-step sampling.

  With ``paired`` set, first image k always goes with second image k (a
  fixed set of training pairs, see `make_train_pool`); otherwise any first
  image may meet any second one.
  """
  first: jax.Array   # uint8, e.g. [60000, 28, 28] MNIST digits
  second: jax.Array  # uint8, e.g. [50000, 32, 32, 3] CIFAR-10 images
  paired: bool = struct.field(pytree_node=False, default=False)
  pair: sources.Pair = struct.field(pytree_node=False, default=sources.DEFAULT)


class EvalSet(NamedTuple):
  """The fixed evaluation pairs, as uint8 arrays with labels and indices."""
  first: np.ndarray           # uint8, e.g. [n, 28, 28]
  second: np.ndarray          # uint8, e.g. [n, 32, 32, 3]
  first_labels: np.ndarray    # int32 [n]
  second_labels: np.ndarray   # int32 [n]
  first_index: np.ndarray     # position of each first image in its test split
  second_index: np.ndarray    # position of each second image in its test split
  pair: sources.Pair = sources.DEFAULT


def resolve_source(data_config: ml_collections.ConfigDict) -> str:
  """Decides between 'local' and 'tfds' for `data_config.source`.

  Raises:
    ConfigError: `source` is not one of auto, local or tfds.
    DataError: the requested source cannot provide data.
  """
  source, data_dir = data_config.source, data_config.dir
  names = tuple(d.name for d in sources.Pair.from_config(data_config).datasets
                if d.folder is None)
  if source not in SOURCES:
    raise ConfigError(f'data.source={source!r} is unknown; use one of {SOURCES}')
  if not names:  # Only folder sources: nothing for local or tfds to serve.
    return 'local'
  if source == 'local':
    if not data_dir:
      raise DataError('data.source=local needs a folder: ' + _HOW_TO_GET_DATA)
    problem = local_problem(data_dir, names)
    if problem:
      raise DataError(f'{problem}; ' + _HOW_TO_GET_DATA)
    return 'local'
  if source == 'auto' and data_dir and not local_problem(data_dir, names):
    return 'local'
  return 'tfds'


def local_problem(data_dir: str,
                  names: tuple[str, ...] = sources.DEFAULT.names) -> str | None:
  """Why `data_dir` cannot serve the datasets `names`, or None."""
  folder = pathlib.Path(data_dir)
  if folder.is_file():
    return f'data.dir {data_dir} is a file, not a folder'
  if not folder.is_dir():
    return f'data folder {data_dir} does not exist'
  missing = local_files.missing_files(data_dir, names)
  if missing:
    return (f'data folder {data_dir} lacks {len(missing)} file(s), e.g. '
            f'{missing[0]}')
  return None


def load_datasets(data_config: ml_collections.ConfigDict,
                  with_train: bool = True) -> Datasets:
  """Loads the two sources' datasets from the configured place.

  Args:
    data_config: ``config.data``.
    with_train: also read the train splits (evaluation only needs test).

  Returns:
    `Datasets`; the train fields are None when `with_train` is False.
  """
  source = resolve_source(data_config)
  pair = sources.Pair.from_config(data_config)
  logging.info('Reading data from %s (%s).', source,
               data_config.dir if source == 'local' else 'tensorflow-datasets')
  splits = ('train', 'test') if with_train else ('test',)
  def reader(name):
    if name.startswith(sources.FOLDER):
      return functools.partial(
          local_files.read_folder, name[len(sources.FOLDER):],
          size=data_config.image_size,
          test_fraction=data_config.test_fraction)
    if source == 'local':
      return functools.partial(local_files.READERS[name], data_config.dir)
    return functools.partial(_read_tfds, name,
                             tfds_dir=data_config.tfds_dir or None)
  try:
    read = {d.name: {split: reader(d.name)(split) for split in splits}
            for d in pair.datasets}
  except DataError as e:
    if source == 'tfds' and data_config.dir:  # 'auto' passed the folder over.
      raise DataError(
          f'{local_problem(data_config.dir, pair.names)}, and {e}') from None
    raise
  first, second = read[pair.first.name], read[pair.second.name]
  return Datasets(first_train=first.get('train'), first_test=first['test'],
                  second_train=second.get('train'),
                  second_test=second['test'], pair=pair)


def _read_tfds(name: str, split: str, tfds_dir: str | None) -> Split:
  """Reads one prepared tfds split through the TensorFlow-free data source."""
  import tensorflow_datasets as tfds  # Heavy; only imported on this path.

  try:
    source = tfds.data_source(name, split=split, data_dir=tfds_dir,
                              download=False)
  except Exception:  # pylint: disable=broad-except
    # Not prepared as array_record yet: prepare it, which needs TF and network.
    _prepare_tfds(name, tfds_dir)
    source = tfds.data_source(name, split=split, data_dir=tfds_dir,
                              download=False)
  examples = [source[i] for i in range(len(source))]
  images = np.stack([np.asarray(e['image'], np.uint8) for e in examples])
  if name == 'mnist':
    images = images.reshape(len(examples), 28, 28)
  labels = np.asarray([e['label'] for e in examples], np.int32)
  return Split(images, labels)


def _prepare_tfds(name: str, tfds_dir: str | None) -> None:
  """Downloads and prepares `name` as array_record, failing fast when it can't."""
  if importlib.util.find_spec('tensorflow') is None:
    raise DataError(f'no data: tfds has not prepared {name!r} and preparing it '
                    'needs TensorFlow, which is not installed; '
                    + _HOW_TO_GET_DATA)
  # tfds retries a dead connection for minutes; one quick probe says more.
  try:
    socket.create_connection(('storage.googleapis.com', 443), timeout=5).close()
  except OSError:
    raise DataError(f'no data: {name!r} is not prepared for tfds and this '
                    'machine is offline; ' + _HOW_TO_GET_DATA) from None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = tfds.builder(name, data_dir=tfds_dir, file_format='array_record')
  builder.download_and_prepare()


def make_train_pool(datasets: Datasets,
                    sharding: jax.sharding.Sharding | None = None,
                    num_pairs: int = 0, pairing_seed: int = 0) -> TrainPool:
  """Puts the uint8 training images on the device(s), replicated.

  Args:
    datasets: the loaded datasets (with train splits).
    sharding: where the pool goes; the default device when None.
    num_pairs: 0 (the default) keeps every training image and pairs them
      afresh at each draw; N > 0 keeps only N fixed training pairs, chosen
      by `pairing` on the train splits (N = 1: the single-pair experiment).
    pairing_seed: seed of that choice.
  """
  first, second = datasets.first_train.images, datasets.second_train.images
  if num_pairs:
    first_index, second_index = pairing(
        num_pairs, pairing_seed, len(first), len(second),
        what='data.train_pairs',
        one_dataset=datasets.pair.permutation_invariant)
    first, second = first[first_index], second[second_index]
  first = put_on_mesh(first, sharding)
  # One dataset twice, drawn afresh: one copy on the device serves both.
  second = (first if datasets.pair.permutation_invariant and not num_pairs
            else put_on_mesh(second, sharding))
  return TrainPool(first=first, second=second, paired=bool(num_pairs),
                   pair=datasets.pair)


def sample_batch(pool: TrainPool, rng: jax.Array,
                 batch_size: int) -> preprocessing.Mixtures:
  """Draws `batch_size` random pairs of the two sources; jit-friendly."""
  first_rng, second_rng = jax.random.split(rng)
  i = jax.random.randint(first_rng, (batch_size,), 0, pool.first.shape[0])
  j = i if pool.paired else jax.random.randint(
      second_rng, (batch_size,), 0, pool.second.shape[0])
  return preprocessing.make_mixtures(pool.first[i], pool.second[j], pool.pair)


def pairing(num_pairs: int, pairing_seed: int, num_first: int,
            num_second: int, what: str = 'eval.num_pairs',
            one_dataset: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """The documented eval pairing: seeded permutations, truncated.

  With ``rng = np.random.default_rng(pairing_seed)``:

  * two datasets: pair k is first test image ``rng.permutation(num_first)[k]``
    with second test image ``rng.permutation(num_second)[k]`` (the second
    permutation drawn after the first). For ``num_pairs = 10000`` with MNIST
    and CIFAR-10, every test image of both sets is used once;
  * one dataset twice (`one_dataset`): pair k is test image k with test
    image ``rng.permutation(num_first)[k]``, the published separators'
    pairing (LASS's, with seed 100: docs/papers.md). An image may meet
    itself.
  """
  if not 0 < num_pairs <= min(num_first, num_second):
    raise ConfigError(
        f'{what}={num_pairs} must be in 1..{min(num_first, num_second)}'
        ' (the size of the smaller split)')
  rng = np.random.default_rng(pairing_seed)
  if one_dataset:
    return np.arange(num_pairs), rng.permutation(num_first)[:num_pairs]
  first_index = rng.permutation(num_first)[:num_pairs]
  second_index = rng.permutation(num_second)[:num_pairs]
  return first_index, second_index


def make_eval_set(datasets: Datasets, num_pairs: int,
                  pairing_seed: int) -> EvalSet:
  """The fixed eval pairs from the test splits (see `pairing`)."""
  first, second = datasets.first_test, datasets.second_test
  first_index, second_index = pairing(
      num_pairs, pairing_seed, len(first.images), len(second.images),
      one_dataset=datasets.pair.permutation_invariant)
  return EvalSet(
      first=first.images[first_index], second=second.images[second_index],
      first_labels=first.labels[first_index],
      second_labels=second.labels[second_index],
      first_index=first_index, second_index=second_index, pair=datasets.pair)
