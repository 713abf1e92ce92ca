"""The training objective: what the network learns, and how it is scored."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from mixae_jax import metrics
from mixae_jax.data import preprocessing
from mixae_jax.data import sources

# What a network can be trained to do (`task_io`).
TASKS = ('separate', 'reconstruct_mixture', 'reconstruct_digit')
# The pixel term of the loss (`pixel_term`).
PIXEL_LOSSES = ('mse', 'l1')


@dataclasses.dataclass(frozen=True)
class LossSettings:
  """``config.task`` and ``config.loss``, as static (hashable) jit arguments.

  Attributes:
    task: what the network learns, one of `TASKS`.
    pixel: the pixel term, one of `PIXEL_LOSSES`.
    digit_weight: weight of the digit output's loss.
    image_weight: weight of the image output's loss.
    ssim_weight: weight of each output's (1 - SSIM) term; 0: none.
    permutation_invariant: the two sources are one dataset: each pair's
      outputs are matched to its sources in the better order first
      (`align`).
  """
  task: str
  pixel: str
  digit_weight: float
  image_weight: float
  ssim_weight: float
  permutation_invariant: bool = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'LossSettings':
    return cls(task=config.task, pixel=config.loss.pixel,
               digit_weight=float(config.loss.digit_weight),
               image_weight=float(config.loss.image_weight),
               ssim_weight=float(config.loss.ssim_weight),
               permutation_invariant=sources.Pair.from_config(
                   config.data).permutation_invariant)


def task_io(task: str, batch: preprocessing.Mixtures
            ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The network input and the two outputs' targets for a training task.

  'separate' is this project's task: mixture in, (digit, image) out. The
  other two are the reference designs' tasks: 'reconstruct_mixture' (an
  autoencoder of the mixture itself, references 001/002) and
  'reconstruct_digit' (a plain MNIST autoencoder, reference 003).
  """
  if task == 'separate':
    return batch.mixture, batch.first, batch.second
  if task == 'reconstruct_mixture':
    return batch.mixture, batch.mixture, batch.mixture
  if task == 'reconstruct_digit':
    return batch.first, batch.first, batch.first
  raise ValueError(f'unknown task {task!r}; use one of {TASKS}')


def pixel_term(error: jax.Array, kind: str) -> jax.Array:
  """The pixel term of the loss from the errors [N, H, W, C] of a batch.

  'mse': their mean square. 'l1': the mean absolute error, whose gradient
  does not fade as a pixel's error shrinks (Zhao et al. 2017), scaled (a
  constant, no gradient) to the MSE's value, so that the SSIM weight keeps
  its meaning beside it.
  """
  # The mean of per-image means (equal sizes: the global mean).
  mse = jnp.mean(jnp.mean(jnp.square(error), axis=tuple(range(1, error.ndim))))
  if kind == 'mse':
    return mse
  if kind == 'l1':
    mae = jnp.mean(jnp.abs(error))
    return jax.lax.stop_gradient(mse / (mae + 1e-10)) * mae
  raise ValueError(f'unknown pixel loss {kind!r}; use one of {PIXEL_LOSSES}')


def align(first: jax.Array, second: jax.Array, first_target: jax.Array,
          second_target: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The two outputs, swapped in each pair where the swap is nearer the
  targets (smaller summed squared error): utterance-level permutation-
  invariant training (Kolbaek et al. 2017) for two sources without roles.
  The choice carries no gradient; the loss then flows through the chosen
  assignment.
  """
  def negative_sse(x, y):
    return -jnp.sum(jnp.square(x - y), axis=tuple(range(1, x.ndim)))
  return metrics.align((first, second), (first_target, second_target),
                       negative_sse)


def separation_loss(digit: jax.Array, image: jax.Array,
                    digit_target: jax.Array, image_target: jax.Array,
                    settings: LossSettings
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted loss of the two outputs, and its terms.

  Each output's loss is ``P + ssim_weight * (1 - SSIM)`` (SSIM as in the
  eval: dm-pix, mean over images), where P is its `pixel_term`; the total
  is ``digit_weight *`` the digit's plus ``image_weight *`` the image's.

  Returns:
    The loss, and scalar terms: digit_mse, image_mse and, with an
    ssim_weight > 0, digit_ssim and image_ssim.
  """
  if settings.permutation_invariant:
    digit, image = align(digit, image, digit_target, image_target)
  terms = {'digit_mse': jnp.mean(jnp.square(digit - digit_target)),
           'image_mse': jnp.mean(jnp.square(image - image_target))}
  digit_loss = pixel_term(digit - digit_target, settings.pixel)
  image_loss = pixel_term(image - image_target, settings.pixel)
  if settings.ssim_weight:  # Static: without a weight, no SSIM is computed.
    terms['digit_ssim'] = jnp.mean(metrics.ssim(digit, digit_target))
    terms['image_ssim'] = jnp.mean(metrics.ssim(image, image_target))
    digit_loss += settings.ssim_weight * (1.0 - terms['digit_ssim'])
    image_loss += settings.ssim_weight * (1.0 - terms['image_ssim'])
  loss = settings.digit_weight * digit_loss + settings.image_weight * image_loss
  return loss, terms
