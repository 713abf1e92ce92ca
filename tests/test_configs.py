"""Every config loads, validates, comments its fields and says how to run it."""

import importlib
import pathlib
import re

import pytest

from mixae_jax import config_io

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (REPO / 'configs').glob('*.py')
                 if p.stem != '__init__')


def test_only_the_live_configs():
  assert set(CONFIGS) == {'dual', 'quick', 'tiny', 'release', 'seed004',
                          'mixture_ae', 'digit_ae', 'single_pair'}


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


def test_every_default_field_has_a_comment():
  # Each field, or the group of fields it belongs to, has a comment above.
  lines = (REPO / 'configs' / 'dual.py').read_text().splitlines()
  field = re.compile(r'\s+config\.\w+(\.\w+)? = (?!ml_collections\.ConfigDict)')
  for i, line in enumerate(lines):
    if field.match(line):
      above = lines[i - 1].strip()
      assert above.startswith('#') or field.match(lines[i - 1]), line
