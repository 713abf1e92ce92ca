"""Releasing a trained model: a small, self-contained run folder.

``launch.py --mode=export --workdir=runs/dual --output_dir=pretrained/dual``
writes ``config.json`` and a checkpoint holding only the model's variables
(no optimizer state: a third of the size), which `Separator.restore` and
``--mode=eval`` read like any run folder.
"""

import pathlib

from mixae_jax import checkpoints
from mixae_jax import configuration
from mixae_jax.errors import CheckpointError


def export(workdir: str | pathlib.Path, output_dir: str | pathlib.Path,
           step: int | None = None) -> pathlib.Path:
  """Copies the model of `workdir`'s checkpoint into a release folder.

  Args:
    workdir: a training run folder.
    output_dir: the release folder to write; it must not hold a checkpoint.
    step: which checkpoint; the latest when None.

  Returns:
    The checkpoint folder written.

  Raises:
    CheckpointError: no run to read, or `output_dir` holds a model already.
  """
  from mixae_jax import train  # pylint: disable=g-import-not-at-top

  output_dir = pathlib.Path(output_dir)
  if checkpoints.checkpoint_dir(output_dir).exists():
    raise CheckpointError(
        f'{output_dir} already holds a model; remove it or choose another '
        '--output_dir (nothing was changed)')
  config = configuration.load(workdir)
  source = checkpoints.create_manager(workdir, read_only=True)
  try:
    variables = checkpoints.restore_model(
        source, train.create_train_state(config), step)
  finally:
    source.close()
  train.check_writable(output_dir)
  # The data folder is the trainer's; users set MIXAE_DATA_DIR or use tfds.
  config.data.dir = ''
  manager = checkpoints.create_manager(output_dir, max_to_keep=1)
  try:
    checkpoints.save(manager, int(variables['step']), variables)
    checkpoints.wait(manager)
  finally:
    manager.close()
  configuration.save(config, output_dir)
  return checkpoints.checkpoint_dir(output_dir) / str(int(variables['step']))
