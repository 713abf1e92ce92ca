"""Checking configs before any work starts, and saving/loading them as JSON."""

import json
import os
import pathlib

from etils import epath
import jax
import ml_collections

from mixae_jax import atomic_files
from mixae_jax import losses
from mixae_jax import models
from mixae_jax import paths
from mixae_jax.data import local_files
from mixae_jax.data import sources
from mixae_jax.errors import CheckpointError, ConfigError

CONFIG_FILE = 'config.json'
SCHEDULES = ('constant', 'cosine')
OPTIMIZERS = ('adam', 'muon')
TASKS = losses.TASKS
PIXEL_LOSSES = losses.PIXEL_LOSSES

# Every field of a config, by its dotted name: the fields configs/dual.py
# sets, each with its one default there (tests/test_configs.py holds the two
# equal). The code reads them directly, never with a fallback.
FIELDS = (
    'seed', 'task', 'dtype', 'init_from', 'batch_size', 'num_train_steps',
    'log_every_steps',
    'model.name', 'model.widths', 'model.digit_channels', 'model.head',
    'model.digit_resized_from', 'model.activation', 'model.decoders',
    'data.sources', 'data.image_size', 'data.test_fraction', 'data.source',
    'data.dir', 'data.tfds_dir', 'data.train_pairs',
    'optimizer.name', 'optimizer.learning_rate', 'optimizer.schedule',
    'optimizer.warmup_steps', 'optimizer.final_lr_fraction',
    'optimizer.weight_decay', 'optimizer.grad_clip_norm',
    'loss.pixel', 'loss.digit_weight', 'loss.image_weight', 'loss.ssim_weight',
    'eval.num_pairs', 'eval.pairing_seed', 'eval.batch_size',
    'eval.every_steps', 'eval.periodic_num_pairs',
    'checkpoint.every_steps', 'checkpoint.max_to_keep',
)

# The upgrade of a config saved by an older mixae_jax (`upgrade`), in two
# tables. A field added since the first release: the value the code had in
# effect before the field existed, which is what such a run did.
ADDED_FIELDS = {
    'task': 'separate',
    'dtype': 'float32',
    'init_from': '',
    'data.train_pairs': 0,
    'data.sources': ('mnist', 'cifar10'),
    'data.image_size': 32,
    'data.test_fraction': 0.1,
    'model.head': 'twin',
    'model.digit_resized_from': 0,
    'model.activation': 'relu',
    'model.decoders': 'twin',
    'optimizer.name': 'adam',
    'loss.pixel': 'mse',
    'loss.ssim_weight': 0.0,
}
# A field since removed: the one value the code still computes, and the
# last commit that has the others (docs/levers.md keeps their measurements).
REMOVED_FIELDS = {
    'model.norm': ('batch', 'c59ab19'),
    'model.attention_heads': (0, 'c59ab19'),
    'model.patch_size': (1, 'c59ab19'),
    'optimizer.ema_decay': (0.0, 'c59ab19'),
    'loss.digit_ssim_weight': (None, 'c59ab19'),
    'loss.image_ssim_weight': (None, 'c59ab19'),
}


def _parent(config: ml_collections.ConfigDict, key: str):
  """(the section that holds dotted `key`, its last name); None if absent."""
  *parents, leaf = key.split('.')
  node = _lookup(config, '.'.join(parents)) if parents else config
  return (node if hasattr(node, 'keys') else None), leaf


def _lookup(config: ml_collections.ConfigDict, key: str):
  """The value at dotted `key`, or `_ABSENT`."""
  node = config
  for part in key.split('.'):
    if not hasattr(node, 'keys') or part not in node:
      return _ABSENT
    node = node[part]
  return node


_ABSENT = object()


def upgrade(config: ml_collections.ConfigDict, source: str
            ) -> ml_collections.ConfigDict:
  """A saved config in this version's form, through the two tables above.

  Args:
    config: as read from a run's ``config.json``.
    source: where it came from, for the error message.

  Returns:
    A copy with every added field at its earlier value and every removed
    field gone.

  Raises:
    ConfigError: a removed field at a value the code no longer computes.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in ADDED_FIELDS.items():
    node, leaf = _parent(config, key)
    if node is not None and leaf not in node:
      node[leaf] = value
  for key, (value, commit) in REMOVED_FIELDS.items():
    saved = _lookup(config, key)
    if saved is _ABSENT:
      continue
    if saved != value:
      raise ConfigError(
          f'{source} sets {key}={saved!r}, an option that lost its '
          f'measurements and was removed (docs/levers.md); only {value!r} '
          f'remains. Use mixae_jax at commit {commit} to run this model')
    node, leaf = _parent(config, key)
    del node[leaf]
  return config


def missing_fields(config: ml_collections.ConfigDict) -> list[str]:
  """The fields of `FIELDS` that `config` lacks."""
  return [key for key in FIELDS if _lookup(config, key) is _ABSENT]


def unknown_fields(config: ml_collections.ConfigDict) -> list[str]:
  """The fields `config` sets that are not in `FIELDS` (nothing reads them)."""
  def keys(node, prefix=''):
    for key, value in node.items():
      if hasattr(value, 'keys'):
        yield from keys(value, f'{prefix}{key}.')
      else:
        yield prefix + key
  return [key for key in keys(config) if key not in FIELDS]


def _positive_int(config: ml_collections.ConfigDict, key: str,
                  allow_zero: bool = False) -> None:
  value = _lookup(config, key)
  low = 0 if allow_zero else 1
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ConfigError(f'{key}={value!r} must be an integer >= {low}')


def validate(config: ml_collections.ConfigDict,
             num_devices: int | None = None) -> None:
  """Raises `ConfigError` naming the first value that cannot work.

  Checks that every field is there, the ranges, and the relations between
  fields (e.g. batch sizes that must divide over the devices), and builds
  the model once so that an unknown model name or head is caught before
  data is read.
  """
  missing = missing_fields(config)
  if missing:
    raise ConfigError(
        f'the config lacks {", ".join(missing)}; build it from '
        "configs/dual.py's get_config() (every field has its default there)")
  unknown = unknown_fields(config)
  if unknown:
    removed = [key for key in unknown if key in REMOVED_FIELDS]
    why = (f' ({", ".join(removed)}: removed, see docs/levers.md)'
           if removed else '')
    raise ConfigError(
        f'the config sets {", ".join(unknown)}, which mixae_jax does not '
        f'read{why}; remove it, or see configs/dual.py for the fields')
  num_devices = jax.device_count() if num_devices is None else num_devices
  for key in ('batch_size', 'log_every_steps', 'eval.batch_size',
              'eval.num_pairs', 'checkpoint.every_steps',
              'checkpoint.max_to_keep'):
    _positive_int(config, key)
  for key in ('num_train_steps', 'eval.every_steps', 'eval.periodic_num_pairs',
              'optimizer.warmup_steps', 'data.train_pairs'):
    _positive_int(config, key, allow_zero=True)
  for key in ('batch_size', 'eval.batch_size'):
    value = _lookup(config, key)
    if value % num_devices:
      processes = (f' ({jax.process_count()} processes of '
                   f'{jax.local_device_count()})' if jax.process_count() > 1
                   else '')
      raise ConfigError(
          f'{key}={value} does not divide over the {num_devices} devices'
          f'{processes}; use a multiple of {num_devices}, e.g. '
          f'{num_devices * max(1, value // num_devices)}')
  if not 0 < config.data.test_fraction < 1:
    raise ConfigError(f'data.test_fraction={config.data.test_fraction!r} must '
                      'be between 0 and 1 (e.g. 0.1 holds out a tenth)')
  if not config.optimizer.learning_rate > 0:
    raise ConfigError(f'optimizer.learning_rate={config.optimizer.learning_rate}'
                      ' must be > 0')
  for key, value, allowed in (
      ('optimizer.name', config.optimizer.name, OPTIMIZERS),
      ('optimizer.schedule', config.optimizer.schedule, SCHEDULES),
      ('loss.pixel', config.loss.pixel, PIXEL_LOSSES),
      ('task', config.task, TASKS)):
    if value not in allowed:
      raise ConfigError(f'{key}={value!r} is unknown; use one of {allowed}')
  if config.optimizer.name == 'muon' and config.model.name != 'unet':
    raise ConfigError(
        f"optimizer.name='muon' steps the U-Net's hidden layers; "
        f'model.name={config.model.name!r} trains with optimizer.name=adam')
  for key in ('digit_weight', 'image_weight', 'ssim_weight'):
    value = config.loss[key]
    if value < 0:
      raise ConfigError(f'loss.{key}={value} must be >= 0')
  models.create_model(config.model, config.dtype)
  check_pair(config, sources.Pair.from_config(config.data))


def check_pair(config: ml_collections.ConfigDict, pair: sources.Pair) -> None:
  """Raises `ConfigError` where the model or task cannot serve `pair`.

  The grey and 28-pixel priors hold only for a first source that is an
  MNIST digit (grey, and upsampled when the layout is larger than 28); the
  reference designs and tasks are the default pair's.
  """
  names = '+'.join(pair.names)
  if pair != sources.DEFAULT:
    if config.model.name != 'unet':
      raise ConfigError(
          f'model.name={config.model.name!r} separates mnist+cifar10 only; '
          f'{names} needs model.name=unet')
    if config.task != 'separate':
      raise ConfigError(f'task={config.task!r} is a reference task of '
                        f"mnist+cifar10; {names} needs task='separate'")
  if config.model.name != 'unet':
    return
  channels = pair.layout.channels
  if config.model.digit_channels not in (1, channels):
    raise ConfigError(
        f'model.digit_channels={config.model.digit_channels}: {names} '
        f'mixtures have {channels} channel(s); use {channels}')
  if config.model.digit_channels == 1 and pair.first.channels != 1:
    raise ConfigError(
        f'model.digit_channels=1 predicts a grey first source, but '
        f'{pair.first.name} is in colour; use {channels}')
  resized_from = config.model.digit_resized_from
  upsampled = pair.first.size < pair.layout.size
  if resized_from and not (upsampled and resized_from == pair.first.size):
    right = pair.first.size if upsampled else 0
    raise ConfigError(
        f'model.digit_resized_from={resized_from}: in {names} the first '
        f'source is {pair.first.name}, '
        + (f'upsampled from {pair.first.size}' if upsampled else
           f'at its own {pair.first.size}x{pair.first.size}, not upsampled')
        + f'; use {right}')


def save(config: ml_collections.ConfigDict,
         workdir: str | os.PathLike[str]) -> None:
  """Writes ``<workdir>/config.json`` (atomically)."""
  with atomic_files.atomic_path(epath.Path(workdir) / CONFIG_FILE) as tmp:
    tmp.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + '\n')


def load(workdir: str | os.PathLike[str]) -> ml_collections.ConfigDict:
  """Reads the config a run saved in its workdir, in this version's form.

  A config saved by an older mixae_jax is upgraded (`upgrade`). The saved
  data folder belongs to the machine that trained: when it is empty or
  absent here (a released model), this machine's default folder is used
  (`local_files.default_folder`: ``MIXAE_DATA_DIR``, or the one set-up
  wrote).

  Raises:
    CheckpointError: the workdir has no (readable) ``config.json``.
    ConfigError: it holds an option that was removed.
  """
  workdir = paths.resolve(workdir, '--workdir')
  path = workdir / CONFIG_FILE
  hint = '(train one with --mode=train, or pass --config)'
  if not workdir.exists():
    raise CheckpointError(f'{workdir} does not exist: name a mixae_jax run '
                          f'folder or a released model {hint}')
  if not workdir.is_dir():
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
  config = upgrade(config, str(path))
  missing = missing_fields(config)
  if missing:
    raise CheckpointError(
        f'{path} is not a mixae_jax config: it lacks {", ".join(missing)}; '
        'pass --config explicitly, or use the config.json a run wrote')
  here = local_files.default_folder()
  if here and 'data' in config and not (
      config.data.dir and pathlib.Path(config.data.dir).is_dir()):
    config.data.dir = here
  return config
