"""Every config file loads, passes validation and documents its launch command."""

import importlib
import pathlib

import pytest

from mixae_jax import configuration

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.stem for p in (REPO / 'configs').glob('*.py')
                 if p.stem != '__init__')


def test_every_config_is_found():
  assert {'dual', 'quick', 'dual_gpu', 'dual_gpu_finetune'} <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_validates_and_its_docstring_says_how_to_run_it(name):
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config()
  configuration.validate(config)
  assert f'python launch.py --config=configs/{name}.py' in module.__doc__


def test_the_gpu_recipe_chains_its_two_runs():
  from configs import dual_gpu, dual_gpu_finetune  # pylint: disable=g-import-not-at-top
  # The second run starts from the first's export, named in both docstrings.
  export = dual_gpu_finetune.get_config().init_from
  assert (f'--mode=export --workdir=runs/dual_gpu --output_dir={export}'
          in dual_gpu.__doc__)
  assert dual_gpu_finetune.get_config().num_train_steps == 25_000
  assert dual_gpu.get_config().num_train_steps == 36_000
