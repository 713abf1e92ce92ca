"""The train state: what a training checkpoint holds, and how it starts."""

import functools
import os
from typing import Any

from flax.training import train_state
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mixae_jax import checkpoints
from mixae_jax import model_files
from mixae_jax import models
from mixae_jax import optimizer
from mixae_jax import paths
from mixae_jax import tuning
from mixae_jax.data import sources
from mixae_jax.errors import CheckpointError


class TrainState(train_state.TrainState):
  """Params, optimizer state, BatchNorm statistics and the run's rng key."""
  batch_stats: Any
  rng: jax.Array  # Raw uint32 key data, so checkpoints hold plain arrays.


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_variables(model: nn.Module, key: jax.Array,
                    layout: sources.Layout) -> Any:
  """The model's initial variables; one compile per (equal) model.

  Jitted, so that a persistent compilation cache serves a restarted process
  too (op by op, a U-Net's init takes seconds); the values are the same.
  """
  return model.init({'params': key}, jnp.zeros((1, *layout.shape)),
                    train=False)


def create_train_state(config: ml_collections.ConfigDict,
                       model: nn.Module | None = None) -> TrainState:
  """A freshly initialised train state for `config` (seeded by config.seed).

  Args:
    config: the run's config.
    model: the network; by default `config.model` built with this backend's
      layer forms (`tuning.layer_forms`), which share flax's parameters.
  """
  if model is None:
    model = models.create_model(config.model, config.dtype,
                                **tuning.layer_forms())
  init_key, run_key = jax.random.split(jax.random.key(config.seed))
  variables = _init_variables(
      model, init_key, sources.Pair.from_config(config.data).layout)
  return TrainState.create(
      apply_fn=model.apply, params=variables['params'],
      tx=optimizer.make_optimizer(config),
      batch_stats=variables.get('batch_stats', {}),
      rng=jax.random.key_data(run_key))


def init_from(state: TrainState, source: str | os.PathLike[str]) -> TrainState:
  """Starts `state` from the weights of another run or a released model.

  The parameters and BatchNorm statistics come from the latest checkpoint in
  `source` (a run folder, or a release such as ``pretrained/dual``); the
  optimizer state, the step, and hence the learning-rate schedule start
  afresh, so a fine-tuning run gets its own warm-up and decay.

  Args:
    state: a freshly initialised state of this run's config.
    source: the folder to start from (``config.init_from``).

  Raises:
    CheckpointError: `source` has no checkpoint, or one of a different model.
  """
  where = f'config.init_from={str(source)!r}'
  wanted = ("name a run folder or a released model (e.g. pretrained/dual), "
            "or '' to start from random weights")
  folder = paths.resolve(source, 'config.init_from')
  if not folder.exists():
    raise CheckpointError(f'{where}: {folder} does not exist; {wanted}')
  if not folder.is_dir():
    raise CheckpointError(f'{where}: {folder} is a file, not a run folder; '
                          f'{wanted}')
  if not (checkpoints.checkpoint_dir(source).is_dir()
          or model_files.is_model_folder(source)):
    raise CheckpointError(
        f'{where}: {folder} holds no model (neither '
        f'{model_files.WEIGHTS_FILE} nor {checkpoints.CHECKPOINT_DIR}/); '
        f'{wanted}')
  try:
    restored = model_files.read_variables(
        source, {'params': state.params, 'batch_stats': state.batch_stats})
  except CheckpointError as e:
    raise CheckpointError(f'{where} cannot start this model: {e}') from None
  return state.replace(params=restored['params'],
                       batch_stats=restored['batch_stats'])
