"""Checking configs before any work starts, and saving/loading them as JSON."""

import json
import os
import pathlib

import jax
import ml_collections

from mixae_jax import atomic_files
from mixae_jax import models
from mixae_jax.errors import CheckpointError, ConfigError

CONFIG_FILE = 'config.json'
SCHEDULES = ('constant', 'cosine')
OPTIMIZERS = ('adam', 'muon')
# What a network can be trained to do; see train.task_io.
TASKS = ('separate', 'reconstruct_mixture', 'reconstruct_digit')
PIXEL_LOSSES = ('mse', 'psnr', 'l1')


def _positive_int(config: ml_collections.ConfigDict, key: str,
                  allow_zero: bool = False) -> None:
  value = config
  for part in key.split('.'):
    value = value[part]
  low = 0 if allow_zero else 1
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ConfigError(f'{key}={value!r} must be an integer >= {low}')


def validate(config: ml_collections.ConfigDict,
             num_devices: int | None = None) -> None:
  """Raises `ConfigError` naming the first value that cannot work.

  Checks ranges and the relations between fields (e.g. batch sizes that must
  divide over the devices), and builds the model once so that an unknown
  model name or norm is caught before data is read.
  """
  num_devices = jax.device_count() if num_devices is None else num_devices
  for key in ('batch_size', 'log_every_steps', 'eval.batch_size',
              'eval.num_pairs', 'checkpoint.every_steps',
              'checkpoint.max_to_keep'):
    _positive_int(config, key)
  for key in ('num_train_steps', 'eval.every_steps', 'eval.periodic_num_pairs',
              'optimizer.warmup_steps'):
    _positive_int(config, key, allow_zero=True)
  for key in ('batch_size', 'eval.batch_size'):
    value = config.batch_size if key == 'batch_size' else config.eval.batch_size
    if value % num_devices:
      processes = (f' ({jax.process_count()} processes of '
                   f'{jax.local_device_count()})' if jax.process_count() > 1
                   else '')
      raise ConfigError(
          f'{key}={value} does not divide over the {num_devices} devices'
          f'{processes}; use a multiple of {num_devices}, e.g. '
          f'{num_devices * max(1, value // num_devices)}')
  if not config.optimizer.learning_rate > 0:
    raise ConfigError(f'optimizer.learning_rate={config.optimizer.learning_rate}'
                      ' must be > 0')
  name = config.optimizer.get('name', 'adam')
  if name not in OPTIMIZERS:
    raise ConfigError(f'optimizer.name={name!r} is unknown; use one of '
                      f'{OPTIMIZERS}')
  if config.optimizer.schedule not in SCHEDULES:
    raise ConfigError(f'optimizer.schedule={config.optimizer.schedule!r} is '
                      f'unknown; use one of {SCHEDULES}')
  ema_decay = config.optimizer.get('ema_decay', 0.0)
  if not 0.0 <= ema_decay < 1.0:
    raise ConfigError(f'optimizer.ema_decay={ema_decay} must be in [0, 1) '
                      '(0: no moving average; e.g. 0.999)')
  for key in ('digit_weight', 'image_weight', 'ssim_weight',
              'digit_ssim_weight', 'image_ssim_weight'):
    value = config.loss.get(key)
    if value is not None and value < 0:
      raise ConfigError(f'loss.{key}={value} must be >= 0')
  pixel = config.loss.get('pixel', 'mse')
  if pixel not in PIXEL_LOSSES:
    raise ConfigError(f'loss.pixel={pixel!r} is unknown; use one of '
                      f'{PIXEL_LOSSES}')
  if config.get('task', 'separate') not in TASKS:
    raise ConfigError(f'task={config.task!r} is unknown; use one of {TASKS}')
  train_pairs = config.data.get('train_pairs', 0)
  if isinstance(train_pairs, bool) or not isinstance(train_pairs, int) or (
      train_pairs < 0):
    raise ConfigError(f'data.train_pairs={train_pairs!r} must be an integer '
                      '>= 0 (0: fresh random pairs)')
  models.create_model(config.model, config.get('dtype', 'float32'))


def save(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> None:
  """Writes ``<workdir>/config.json`` (atomically)."""
  with atomic_files.atomic_path(pathlib.Path(workdir) / CONFIG_FILE) as tmp:
    tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n')


# What every mode reads from a saved config.json (older runs have all of them).
_REQUIRED_FIELDS = ('seed', 'batch_size', 'model.name', 'data.source',
                    'data.dir', 'eval.num_pairs', 'eval.batch_size',
                    'eval.pairing_seed')


def _lookup(config: ml_collections.ConfigDict, key: str):
  node = config
  for part in key.split('.'):
    if not hasattr(node, 'keys') or part not in node:
      return None
    node = node[part]
  return node


def load(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """Reads the config a run saved in its workdir.

  The saved data folder belongs to the machine that trained: when it is
  empty or absent here (a released model), ``MIXAE_DATA_DIR``, if set, names
  this machine's folder instead.

  Raises:
    CheckpointError: the workdir has no (readable) ``config.json``.
  """
  path = pathlib.Path(workdir) / CONFIG_FILE
  hint = '(train one with --mode=train, or pass --config)'
  if not pathlib.Path(workdir).exists():
    raise CheckpointError(f'{workdir} does not exist: name a mixae_jax run '
                          f'folder or a released model {hint}')
  if not pathlib.Path(workdir).is_dir():
    raise CheckpointError(f'{workdir} is a file, not a mixae_jax run folder '
                          f'{hint}')
  if not path.is_file():
    raise CheckpointError(
        f'{path} not found: {workdir} is not a mixae_jax run folder (train '
        'one with --mode=train, or pass --config)')
  try:
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f'{path} is not valid JSON ({e}); pass --config '
                          'explicitly') from None
  except (OSError, TypeError, ValueError) as e:
    raise CheckpointError(f'{path} cannot be read as a config ({e}); pass '
                          '--config explicitly') from None
  missing = [key for key in _REQUIRED_FIELDS if _lookup(config, key) is None]
  if missing:
    raise CheckpointError(
        f'{path} is not a mixae_jax config: it lacks {", ".join(missing)}; '
        'pass --config explicitly, or use the config.json a run wrote')
  env_dir = os.environ.get('MIXAE_DATA_DIR')
  if env_dir and 'data' in config and not (
      config.data.dir and pathlib.Path(config.data.dir).is_dir()):
    config.data.dir = env_dir
  return config
