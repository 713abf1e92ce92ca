"""The pure train step, and the jitted step the training loop calls.

Training pairs are sampled inside the jitted step from uint8 images kept on
the device (`pipeline.TrainPool`); the step's key is
``fold_in(key(seed), step)``, so a resumed run draws exactly the pairs and
dropout masks the uninterrupted run would have drawn.
"""

import functools
from typing import Callable

import jax
from jax.sharding import NamedSharding
import ml_collections
import optax

from mixae_jax import losses
from mixae_jax import sharding
from mixae_jax.data import pipeline
from mixae_jax.data import preprocessing
from mixae_jax.train_state import TrainState

Metrics = dict[str, jax.Array]


def train_step(state: TrainState, batch: preprocessing.Mixtures,
               rng: jax.Array, settings: losses.LossSettings
               ) -> tuple[TrainState, Metrics]:
  """One optimizer step on `losses.separation_loss`.

  Pure: the same (state, batch, rng) always gives the same result.

  Args:
    state: the train state.
    batch: mixtures with their true sources.
    rng: key for dropout.
    settings: the task and the loss's terms and weights.

  Returns:
    The new state, and scalar metrics: loss, digit_mse, image_mse, grad_norm,
    and with an ssim_weight > 0 also digit_ssim and image_ssim.
  """
  inputs, digit_target, image_target = losses.task_io(settings.task, batch)

  def loss_fn(params):
    variables = {'params': params, 'batch_stats': state.batch_stats}
    (digit, image), updates = state.apply_fn(
        variables, inputs, train=True, rngs={'dropout': rng},
        mutable=['batch_stats'])
    loss, terms = losses.separation_loss(digit, image, digit_target,
                                         image_target, settings)
    return loss, (updates, terms)

  (loss, (updates, terms)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(
      grads=grads, batch_stats=updates.get('batch_stats', state.batch_stats))
  return new_state, {'loss': loss, **terms,
                     'grad_norm': optax.tree.norm(grads)}


@functools.partial(jax.jit, donate_argnums=0,
                   static_argnames=('batch_size', 'data_sharding', 'settings'))
def train_step_on_pool(state: TrainState, pool: pipeline.TrainPool, *,
                       batch_size: int, data_sharding: NamedSharding | None,
                       settings: losses.LossSettings
                       ) -> tuple[TrainState, Metrics]:
  """Draws a fresh batch from the device-resident pool and takes a step.

  The step's key is ``fold_in(run key, step)``: the pairs and dropout masks
  depend only on the seed and the step number, not on restarts or devices.
  With `data_sharding`, the batch is split over the mesh's 'data' axis and
  the parameters stay replicated; XLA inserts the gradient all-reduce and the
  cross-device BatchNorm statistics.
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  sample_key, dropout_key = jax.random.split(key)
  batch = pipeline.sample_batch(pool, sample_key, batch_size)
  if data_sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, data_sharding)
  new_state, metrics = train_step(state, batch, dropout_key, settings)
  if data_sharding is not None:
    replicated = sharding.replicated(data_sharding.mesh)
    new_state = jax.lax.with_sharding_constraint(new_state, replicated)
  return new_state, metrics


def make_step_fn(config: ml_collections.ConfigDict,
                 data_sharding: NamedSharding | None = None
                 ) -> Callable[[TrainState, pipeline.TrainPool],
                               tuple[TrainState, Metrics]]:
  """``step_fn(state, pool)``: `train_step_on_pool` with the config's settings.

  Args:
    config: the run's config.
    data_sharding: the batch's sharding over a mesh of more than one device;
      None on one device.
  """
  if data_sharding is not None and data_sharding.mesh.size == 1:
    data_sharding = None
  return functools.partial(
      train_step_on_pool, batch_size=config.batch_size,
      data_sharding=data_sharding,
      settings=losses.LossSettings.from_config(config))
