"""The quality benchmark's rows name real config fields with valid values.

Each row of benchmarks/quality.py trains for minutes to an hour; a mistyped
override key or a value the config rejects must fail here, in seconds.
"""

import pytest

from benchmarks import quality
from mixae_jax import configuration
from mixae_jax.errors import ConfigError

ROWS = quality.ZOO + quality.LEVERS


def test_row_names_are_unique():
  names = [row.name for row in ROWS]
  assert len(names) == len(set(names))


@pytest.mark.parametrize('row', ROWS, ids=lambda row: row.name)
def test_each_row_overrides_existing_fields_with_valid_values(row):
  base = quality._load_config(row.config)  # pylint: disable=protected-access
  config = quality.with_settings(base, row.overrides)
  configuration.validate(config, num_devices=1)
  for key, value in row.overrides.items():
    got = quality._get(config, key)  # pylint: disable=protected-access
    assert (list(got) if isinstance(got, tuple) else got) == (
        list(value) if isinstance(value, tuple) else value), key


def test_a_mistyped_override_is_refused():
  base = quality._load_config('configs/quick.py')  # pylint: disable=protected-access
  with pytest.raises(KeyError, match='model.widht'):
    quality.with_settings(base, {'model.widht': (8, 16)})
  bad = quality.with_settings(base, {'optimizer.schedule': 'cosin'})
  with pytest.raises(ConfigError, match='optimizer.schedule'):
    configuration.validate(bad, num_devices=1)
