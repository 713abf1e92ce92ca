"""Where the data comes from, how training pairs are drawn and eval pairs fixed.

Two sources give the same uint8 arrays (MNIST [N, 28, 28], CIFAR-10
[N, 32, 32, 3], with labels) for the train and test splits:

  * ``local``: the standard distribution files in ``config.data.dir``
    (see `mixae_jax.local_files`), read with numpy, no TensorFlow needed;
  * ``tfds``: tensorflow-datasets. Reading prepared array_record data needs no
    TensorFlow; downloading and preparing it does (``pip install .[tfds]``).

``auto`` takes ``local`` when the folder holds every file, else ``tfds``. With
neither available it fails at once with a message that says how to get data.

Training pairs are drawn inside the jitted train step from a `TrainPool` kept
on the device, so the host does no per-step work. Eval pairs are fixed by
(``eval.num_pairs``, ``eval.pairing_seed``) alone, whatever the model.
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
from mixae_jax.errors import ConfigError, DataError
from mixae_jax.sharding import put as put_on_mesh
from mixae_jax.data.local_files import Split

SOURCES = ('auto', 'local', 'tfds')
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')
_HOW_TO_GET_DATA = (
    'set --config.data.dir (or MIXAE_DATA_DIR) to a folder with the standard '
    'MNIST/CIFAR-10 files (`python ../shared/data/prepare.py DIR` writes one), '
    'or install TensorFlow (`pip install ".[tfds]"`) and go online so tfds '
    'can download them')


class Datasets(NamedTuple):
  """Both datasets as uint8 arrays on the host (train splits may be None)."""
  mnist_train: Split | None
  mnist_test: Split
  cifar_train: Split | None
  cifar_test: Split


@struct.dataclass
class TrainPool:
  """The uint8 training images, kept on the device for in-step sampling.

  With ``paired`` set, digit k always goes with image k (a fixed set of
  training pairs, see `make_train_pool`); otherwise any digit may meet any
  image.
  """
  digits: jax.Array  # uint8 [60000, 28, 28]
  images: jax.Array  # uint8 [50000, 32, 32, 3]
  paired: bool = struct.field(pytree_node=False, default=False)


class EvalSet(NamedTuple):
  """The fixed evaluation pairs, as uint8 arrays with labels and indices."""
  digits: np.ndarray          # uint8 [n, 28, 28]
  images: np.ndarray          # uint8 [n, 32, 32, 3]
  digit_labels: np.ndarray    # int32 [n]
  image_labels: np.ndarray    # int32 [n]
  digit_index: np.ndarray     # position of each digit in the MNIST test split
  image_index: np.ndarray     # position of each image in the CIFAR-10 test split


def resolve_source(data_config: ml_collections.ConfigDict) -> str:
  """Decides between 'local' and 'tfds' for `data_config.source`.

  Raises:
    ConfigError: `source` is not one of auto, local or tfds.
    DataError: the requested source cannot provide data.
  """
  source, data_dir = data_config.source, data_config.dir
  if source not in SOURCES:
    raise ConfigError(f'data.source={source!r} is unknown; use one of {SOURCES}')
  if source == 'local':
    if not data_dir:
      raise DataError('data.source=local needs a folder: ' + _HOW_TO_GET_DATA)
    problem = local_problem(data_dir)
    if problem:
      raise DataError(f'{problem}; ' + _HOW_TO_GET_DATA)
    return 'local'
  if source == 'auto' and data_dir and not local_problem(data_dir):
    return 'local'
  return 'tfds'


def local_problem(data_dir: str) -> str | None:
  """Why `data_dir` cannot serve as the local data folder, or None."""
  folder = pathlib.Path(data_dir)
  if folder.is_file():
    return f'data.dir {data_dir} is a file, not a folder'
  if not folder.is_dir():
    return f'data folder {data_dir} does not exist'
  missing = local_files.missing_files(data_dir)
  if missing:
    return (f'data folder {data_dir} lacks {len(missing)} file(s), e.g. '
            f'{missing[0]}')
  return None


def load_datasets(data_config: ml_collections.ConfigDict,
                  with_train: bool = True) -> Datasets:
  """Loads MNIST and CIFAR-10 from the configured source.

  Args:
    data_config: ``config.data``.
    with_train: also read the train splits (evaluation only needs test).

  Returns:
    `Datasets`; the train fields are None when `with_train` is False.
  """
  source = resolve_source(data_config)
  logging.info('Reading data from %s (%s).', source,
               data_config.dir if source == 'local' else 'tensorflow-datasets')
  splits = ('train', 'test') if with_train else ('test',)
  if source == 'local':
    read_mnist = functools.partial(local_files.read_mnist, data_config.dir)
    read_cifar = functools.partial(local_files.read_cifar10, data_config.dir)
  else:
    tfds_dir = data_config.tfds_dir or None
    read_mnist = functools.partial(_read_tfds, 'mnist', tfds_dir=tfds_dir)
    read_cifar = functools.partial(_read_tfds, 'cifar10', tfds_dir=tfds_dir)
  try:
    mnist = {split: read_mnist(split) for split in splits}
    cifar = {split: read_cifar(split) for split in splits}
  except DataError as e:
    if source == 'tfds' and data_config.dir:  # 'auto' passed the folder over.
      raise DataError(f'{local_problem(data_config.dir)}, and {e}') from None
    raise
  return Datasets(mnist_train=mnist.get('train'), mnist_test=mnist['test'],
                  cifar_train=cifar.get('train'), cifar_test=cifar['test'])


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
  digits, images = datasets.mnist_train.images, datasets.cifar_train.images
  if num_pairs:
    digit_index, image_index = pairing(num_pairs, pairing_seed, len(digits),
                                       len(images), what='data.train_pairs')
    digits, images = digits[digit_index], images[image_index]
  return TrainPool(digits=put_on_mesh(digits, sharding),
                   images=put_on_mesh(images, sharding),
                   paired=bool(num_pairs))


def sample_batch(pool: TrainPool, rng: jax.Array,
                 batch_size: int) -> preprocessing.Mixtures:
  """Draws `batch_size` random (digit, image) pairs; jit-friendly."""
  digit_rng, image_rng = jax.random.split(rng)
  i = jax.random.randint(digit_rng, (batch_size,), 0, pool.digits.shape[0])
  j = i if pool.paired else jax.random.randint(
      image_rng, (batch_size,), 0, pool.images.shape[0])
  return preprocessing.make_mixtures(pool.digits[i], pool.images[j])


def pairing(num_pairs: int, pairing_seed: int, num_digits: int,
            num_images: int, what: str = 'eval.num_pairs'
            ) -> tuple[np.ndarray, np.ndarray]:
  """The documented eval pairing: two seeded permutations, truncated.

  With ``rng = np.random.default_rng(pairing_seed)``, pair k is MNIST test
  digit ``rng.permutation(num_digits)[k]`` with CIFAR-10 test image
  ``rng.permutation(num_images)[k]`` (the second permutation drawn after the
  first). For ``num_pairs = 10000`` every test image of both sets is used once.
  """
  if not 0 < num_pairs <= min(num_digits, num_images):
    raise ConfigError(
        f'{what}={num_pairs} must be in 1..{min(num_digits, num_images)}'
        ' (the size of the smaller split)')
  rng = np.random.default_rng(pairing_seed)
  digit_index = rng.permutation(num_digits)[:num_pairs]
  image_index = rng.permutation(num_images)[:num_pairs]
  return digit_index, image_index


def make_eval_set(datasets: Datasets, num_pairs: int,
                  pairing_seed: int) -> EvalSet:
  """The fixed eval pairs from the test splits (see `pairing`)."""
  mnist, cifar = datasets.mnist_test, datasets.cifar_test
  digit_index, image_index = pairing(num_pairs, pairing_seed,
                                     len(mnist.images), len(cifar.images))
  return EvalSet(
      digits=mnist.images[digit_index], images=cifar.images[image_index],
      digit_labels=mnist.labels[digit_index],
      image_labels=cifar.labels[image_index],
      digit_index=digit_index, image_index=image_index)
