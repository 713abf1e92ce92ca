"""Releasing a trained model: a small, self-contained run folder.

``launch.py --mode=export --workdir=runs/dual --output_dir=pretrained/dual``
writes ``config.json`` and a checkpoint holding only the model's variables,
stored as float16 (no optimizer state: a sixth of a training checkpoint),
which `Separator.restore` and ``--mode=eval`` read like any run folder.
"""

import pathlib

import jax
import jax.numpy as jnp

from mixae_jax import checkpoints
from mixae_jax import config_io
from mixae_jax import inference
from mixae_jax import models
from mixae_jax import writers
from mixae_jax.errors import CheckpointError, ConfigError


def export(workdir: str | pathlib.Path, output_dir: str | pathlib.Path,
           step: int | None = None, dtype: str = 'float16') -> pathlib.Path:
  """Copies the model of `workdir`'s checkpoint into a release folder.

  Args:
    workdir: a training run folder.
    output_dir: the release folder to write; it must not hold a checkpoint.
    step: which checkpoint; the latest when None.
    dtype: the float type the arrays are stored in: 'float16' (default: half
      the size; the model still computes in float32, and the README's
      figures are measured on the stored model) or 'float32' (exact).

  Returns:
    The checkpoint folder written.

  Raises:
    CheckpointError: no run to read, or `output_dir` holds a model already.
  """
  output_dir = pathlib.Path(output_dir)
  if checkpoints.checkpoint_dir(output_dir).exists():
    raise CheckpointError(
        f'{output_dir} already holds a model; remove it or choose another '
        '--output_dir (nothing was changed)')
  if dtype not in ('float16', 'float32'):
    raise ConfigError(f'dtype={dtype!r}: use float16 or float32')
  config = config_io.load(workdir)
  model = models.create_model(config.model, 'float32')
  source = checkpoints.create_manager(workdir, read_only=True)
  try:
    variables = checkpoints.restore_variables(
        source, inference.abstract_variables(model), step)
  finally:
    source.close()
  variables = jax.tree.map(
      lambda x: x.astype(dtype) if hasattr(x, 'dtype') and jnp.issubdtype(
          x.dtype, jnp.floating) else x,
      variables)
  writers.check_writable(output_dir, flag='--output_dir')
  # Folders of the machine that trained mean nothing elsewhere: the data
  # (users set MIXAE_DATA_DIR or use tfds) and the weights it started from.
  config.data.dir = ''
  config.init_from = ''
  manager = checkpoints.create_manager(output_dir, max_to_keep=1)
  try:
    checkpoints.save(manager, int(variables['step']), variables)
    checkpoints.wait(manager)
  finally:
    manager.close()
  config_io.save(config, output_dir)
  return checkpoints.checkpoint_dir(output_dir) / str(int(variables['step']))
