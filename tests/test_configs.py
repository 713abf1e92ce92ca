"""Every config loads, validates, comments its fields and says how to run it."""

import importlib
import pathlib
import re

import pytest

from mixae_jax import config_io
from mixae_jax.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (REPO / 'configs').glob('*.py')
                 if p.stem != '__init__')


def test_only_the_live_configs():
  assert set(CONFIGS) == {'dual', 'quick', 'tiny', 'release', 'seed004',
                          'mixture_ae', 'digit_ae', 'single_pair',
                          'mnist_mnist', 'cifar_cifar'}


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_its_docstring_says_how_to_run_it(name):
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config()
  config_io.validate(config)
  assert f'python launch.py --config=configs/{name}.py' in module.__doc__


@pytest.mark.parametrize('name', CONFIGS)
def test_comments_say_what_fields_do_not_what_they_scored(name):
  source = (REPO / 'configs' / f'{name}.py').read_text()
  comments = ' '.join(line for line in source.splitlines()
                      if line.strip().startswith('#'))
  assert not re.search(r'\d dB|benchmarks/', comments), name


def test_every_default_field_has_its_own_comment():
  lines = (REPO / 'configs' / 'dual.py').read_text().splitlines()
  field = re.compile(r'\s+config\.\w+(\.\w+)? = (?!ml_collections\.ConfigDict)')
  fields = [line for line in lines if field.match(line)]
  assert len(fields) == len(config_io.FIELDS)
  for i, line in enumerate(lines):
    if field.match(line):
      assert lines[i - 1].strip().startswith('#'), line


def _keys(tree: dict, prefix: str = '') -> set[str]:
  keys = set()
  for key, value in tree.items():
    if isinstance(value, dict):
      keys |= _keys(value, f'{prefix}{key}.')
    else:
      keys.add(prefix + key)
  return keys


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_has_exactly_the_schema(name):
  # configs/dual.py is where each field's one default lives; every other
  # config starts from it or, as the frozen release recipe, writes out every
  # field itself. None has a field the code does not read.
  module = importlib.import_module(f'configs.{name}')
  # Release stages, or a published pair's lengths: each is a whole config.
  stages = getattr(module, 'STAGES', getattr(module, 'LENGTHS', (None,)))
  for stage in stages:
    config = module.get_config(*([stage] if stage else []))
    assert _keys(config.to_dict()) == set(config_io.FIELDS), (name, stage)


def test_a_saved_config_from_before_a_field_existed_is_upgraded_by_the_table():
  from configs import dual  # pylint: disable=g-import-not-at-top
  saved = dual.get_config()
  # As an early run saved it: no fields added since, and a since-removed
  # field at the one value the code still computes.
  del saved.task, saved.dtype, saved.model.head, saved.optimizer.name
  saved.model.norm = 'batch'
  saved.optimizer.ema_decay = 0.0
  upgraded = config_io.upgrade(saved, 'runs/old/config.json')
  assert _keys(upgraded.to_dict()) == set(config_io.FIELDS)
  assert (upgraded.task, upgraded.dtype, upgraded.model.head,
          upgraded.optimizer.name) == ('separate', 'float32', 'twin', 'adam')
  assert set(config_io.ADDED_FIELDS) <= set(config_io.FIELDS)
  assert not set(config_io.REMOVED_FIELDS) & set(config_io.FIELDS)
  # A removed option at another value cannot be computed: one clear line.
  saved.model.norm = 'group'
  with pytest.raises(ConfigError, match=r"runs/old/config.json sets "
                     r"model.norm='group', an option that lost .* only 'batch' "
                     r'remains. Use mixae_jax at commit c59ab19'):
    config_io.upgrade(saved, 'runs/old/config.json')


def test_a_config_missing_a_field_is_named_before_any_work():
  from configs import dual  # pylint: disable=g-import-not-at-top
  config = dual.get_config()
  del config.model.decoders
  with pytest.raises(ConfigError, match=r"the config lacks model.decoders; "
                     r"build it from configs/dual.py's get_config\(\)"):
    config_io.validate(config)
  # A field nothing reads (a removed option, a typo in a config file) is
  # never silently ignored.
  config = dual.get_config()
  config.model.norm = 'group'
  with pytest.raises(ConfigError, match=r'the config sets model.norm, which '
                     r'mixae_jax does not read \(model.norm: removed'):
    config_io.validate(config)
