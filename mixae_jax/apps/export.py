"""Releasing a trained model: a model folder that anyone can load.

``launch.py --mode=export --workdir=runs/dual --output_dir=pretrained/dual``
writes the folder a model hub lists (`model_files`):

  * ``model.safetensors``: the parameters and BatchNorm statistics, float16,
    under flat names (no optimizer state: a sixth of a training checkpoint);
  * ``config.json``: the run's config, without this machine's folders;
  * ``README.md``: the model card (`model_card`), with the run's final eval
    when it scored this step (also kept as ``eval_metrics.json``).

`Separator.restore`, ``--mode=eval|separate|serve`` and
``config.init_from`` read it as they read a run folder.
"""

import json
import os

from etils import epath

from mixae_jax import atomic_files
from mixae_jax import checkpoints
from mixae_jax import config_io
from mixae_jax import inference
from mixae_jax import model_files
from mixae_jax import models
from mixae_jax import paths
from mixae_jax import writers
from mixae_jax.apps import model_card
from mixae_jax.data import sources
from mixae_jax.errors import CheckpointError, ConfigError


def export(workdir: str | os.PathLike[str],
           output_dir: str | os.PathLike[str], step: int | None = None,
           dtype: str = 'float16') -> epath.Path:
  """Writes the model of `workdir`'s checkpoint as a model folder.

  Args:
    workdir: a training run folder (or a model folder, to convert it).
    output_dir: the model folder to write; it must not hold a model.
    step: which checkpoint; the latest when None.
    dtype: the float type the arrays are stored in: 'float16' (default: half
      the size; the model still computes in float32, and the README's
      figures are measured on the stored model) or 'float32' (exact).

  Returns:
    The folder written.

  Raises:
    CheckpointError: no run to read, or `output_dir` holds a model already.
  """
  output_dir = paths.resolve(output_dir, '--output_dir')
  if (model_files.is_model_folder(output_dir)
      or checkpoints.checkpoint_dir(output_dir).exists()):
    raise CheckpointError(
        f'{output_dir} already holds a model; remove it or choose another '
        '--output_dir (nothing was changed)')
  if dtype not in ('float16', 'float32'):
    raise ConfigError(f'dtype={dtype!r}: use float16 or float32')
  config = config_io.load(workdir)
  model = models.create_model(config.model, 'float32')
  variables = model_files.read_variables(
      workdir, inference.abstract_variables(
          model, sources.Pair.from_config(config.data).layout), step)
  step = variables.pop('step')
  writers.check_writable(output_dir, flag='--output_dir')
  # Folders of the machine that trained mean nothing elsewhere: the data
  # (each machine has its own default) and the weights it started from.
  config.data.dir = ''
  config.init_from = ''
  model_files.write(output_dir, variables, step, dtype)
  config_io.save(config, output_dir)
  record, measured_on = _final_eval(paths.resolve(workdir, '--workdir'), step)
  if record:
    with atomic_files.atomic_path(output_dir / 'eval_metrics.json') as tmp:
      tmp.write_text(json.dumps(record, indent=2) + '\n')
  model_card.write(output_dir, config, step, record, measured_on)
  return output_dir


def _final_eval(workdir: epath.Path, step: int) -> tuple[dict | None, str]:
  """The eval record of this step, if any, and what it was measured on."""
  for path, measured_on in (
      (workdir / 'eval' / 'metrics.json',
       f'measured by the run on its step-{step:,} checkpoint (float32 '
       'weights, before export)'),
      (workdir / 'eval_metrics.json',
       'measured on these stored weights (`--mode=eval`)')):
    try:
      record = json.loads(path.read_text())
    except (OSError, ValueError):
      continue
    if record.get('step') == step:
      return record, measured_on
  return None, ''
