"""Inference: a trained model as a plain function on numpy arrays.

    from mixae_jax import Separator
    sep = Separator.restore("runs/dual")
    digits, images = sep(mixtures)   # float32 [N, 32, 32, 3] in [0, 1]
    result = sep.mix_and_separate(uint8_digits, uint8_images)  # scored

Restoring needs only the run's config, the model and its weights: the
arrays' shapes come from ``jax.eval_shape`` of the model's init, so neither
the trainer nor the optimizer is imported.
"""

import dataclasses
import os
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mixae_jax import config_io
from mixae_jax import metrics
from mixae_jax import model_files
from mixae_jax import models
from mixae_jax.data import preprocessing
from mixae_jax.data import sources
from mixae_jax.errors import InputError


@flax.struct.dataclass
class InferenceState:
  """What inference needs: the model's apply function and its variables."""
  apply_fn: Any = flax.struct.field(pytree_node=False)
  params: Any
  batch_stats: Any


def separate(state: Any, mixture: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Runs the model in inference mode: mixture -> (digit, image).

  Args:
    state: an `InferenceState` or a train state (anything with apply_fn,
      params and batch_stats).
    mixture: float32 [N, 32, 32, 3] in [0, 1].
  """
  variables = {'params': state.params}
  if state.batch_stats:
    variables['batch_stats'] = state.batch_stats
  return state.apply_fn(variables, mixture, train=False)


# One compiled inference function for eval figures and `Separator`.
separate_jitted = jax.jit(separate)


def mix_separate_align(separate_fn: Callable[[Any], tuple[Any, Any]],
                       first: Any, second: Any,
                       pair: sources.Pair = sources.DEFAULT
                       ) -> tuple[preprocessing.Mixtures, Any, Any]:
  """Mixes uint8 sources as training does, separates the mixtures, and
  aligns the estimates with the sources: the path the eval, `Separator`
  and the demo share.

  For a pair without roles (one dataset twice) the estimates of each pair
  are swapped where the swap matches the sources better (higher mean PSNR,
  `metrics.align`), as the published separators are scored.

  Args:
    separate_fn: mixtures -> (first, second) estimates (e.g. `separate` with
      a state, or a `Separator`).
    first: uint8 images of the first source, e.g. [N, 28, 28] MNIST digits.
    second: uint8 images of the second, e.g. [N, 32, 32, 3] CIFAR-10 images.
    pair: the sources.

  Returns:
    The mixtures with their sources, and the first and second estimates.
  """
  mix = preprocessing.make_mixtures(first, second, pair)
  estimate_1, estimate_2 = separate_fn(mix.mixture)
  if pair.permutation_invariant:
    estimate_1, estimate_2 = metrics.align((estimate_1, estimate_2),
                                           (mix.first, mix.second))
  return mix, estimate_1, estimate_2


def abstract_variables(model: flax.linen.Module,
                       layout: sources.Layout = sources.DEFAULT.layout
                       ) -> dict[str, Any]:
  """The model's ``{'params', 'batch_stats'}`` as shapes, computing nothing.

  Args:
    model: the network.
    layout: the mixtures it takes (`sources.Pair.layout`).
  """
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, *layout.shape))))
  return {'params': shapes['params'],
          'batch_stats': shapes.get('batch_stats', {})}


def restore_state(config: ml_collections.ConfigDict,
                  workdir: str | os.PathLike[str], step: int | None = None,
                  model: flax.linen.Module | None = None
                  ) -> tuple[InferenceState, int]:
  """The model of `config` with the weights `workdir` saved.

  Args:
    config: the run's config.
    workdir: a run folder or a released model.
    step: which checkpoint; the latest when None.
    model: the model to restore into; `config.model` in float32 when None
      (pass one built with other layer forms or dtype, same parameters).

  Returns:
    The state and the checkpoint's step.

  Raises:
    CheckpointError: no checkpoint, or one that does not fit the model.
  """
  if model is None:
    model = models.create_model(config.model, 'float32')
  layout = sources.Pair.from_config(config.data).layout
  restored = model_files.read_variables(
      workdir, abstract_variables(model, layout), step)
  state = InferenceState(apply_fn=model.apply, params=restored['params'],
                         batch_stats=restored['batch_stats'])
  return state, restored['step']


@dataclasses.dataclass
class Separation:
  """Mixtures, what the model separated them into, and how well.

  Every image is float32 [N, 32, 32, 3] in [0, 1]; ``scores`` holds
  ``{'digit': {'psnr', 'ssim', 'mse'}, 'image': {...}}``, each a float32 [N]
  array (`metrics.per_image`), and is None, as are the truths, where the
  true sources are not known.
  """
  mixture: np.ndarray
  digit: np.ndarray
  image: np.ndarray
  true_digit: np.ndarray | None = None
  true_image: np.ndarray | None = None
  scores: dict[str, dict[str, np.ndarray]] | None = None


@jax.jit
def _score(digit, image, true_digit, true_image):
  return {'digit': metrics.per_image(digit, true_digit),
          'image': metrics.per_image(image, true_image)}


class Separator:
  """Separates mixtures with a trained model, batching internally.

  Build one with `Separator.restore(workdir)`; call it on float32
  [N, 32, 32, 3] mixtures in [0, 1].
  """

  def __init__(self, state: InferenceState,
               config: ml_collections.ConfigDict, step: int | None = None,
               batch_size: int = 256):
    self.state = state
    self.config = config
    self.step = step
    self.batch_size = batch_size
    # The sources the model separates, and the mixtures' layout.
    self.pair = sources.Pair.from_config(config.data)

  @classmethod
  def restore(cls, workdir: str | os.PathLike[str], step: int | None = None,
              batch_size: int = 256) -> 'Separator':
    """Loads the model a run saved in `workdir` (its config.json and checkpoint).

    Args:
      workdir: a run folder written by ``launch.py --mode=train``, or a
        released model such as ``pretrained/dual``.
      step: which checkpoint; the latest when None.
      batch_size: how many mixtures go through the model at once.

    Raises:
      CheckpointError: no run folder, no checkpoint, or one that does not fit.
    """
    config = config_io.load(workdir)
    state, restored_step = restore_state(config, workdir, step)
    return cls(state, config, step=restored_step, batch_size=batch_size)

  def __call__(self, mixtures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Separates a batch of mixtures.

    Args:
      mixtures: float32 [N, 32, 32, 3] (or one [32, 32, 3] image) in [0, 1];
        for a model of other sources, their layout (``self.pair.layout``,
        e.g. [N, 28, 28, 1] for MNIST twice).

    Returns:
      The first and second sources' estimates (digits and images for the
      default pair): two float32 arrays of the input's shape, in [0, 1].

    Raises:
      InputError: wrong type, dtype, shape, or values outside [0, 1] or NaN.
    """
    x = check_mixtures(mixtures, self.pair.layout)
    single = x.ndim == 3
    if single:
      x = x[None]
    digits, images = [], []
    for start in range(0, len(x), self.batch_size):
      chunk = x[start:start + self.batch_size]
      n = len(chunk)
      if n < self.batch_size and len(x) > self.batch_size:
        # Pad the tail so every batch reuses the one compiled shape.
        chunk = np.concatenate([chunk, np.zeros((self.batch_size - n,) +
                                                chunk.shape[1:], np.float32)])
      d, i = separate_jitted(self.state, chunk)
      digits.append(np.asarray(d)[:n])
      images.append(np.asarray(i)[:n])
    digits, images = np.concatenate(digits), np.concatenate(images)
    return (digits[0], images[0]) if single else (digits, images)

  def for_digit_size(self, size: int) -> 'Separator':
    """This separator, for mixtures whose digits were ``size`` pixels wide.

    A model whose head assumes digits upsampled from another size
    (``model.digit_resized_from``, 28 in configs/dual.py) would remove detail
    that such digits have (a 32x32 digit is not upsampled at all); the
    returned separator uses the same weights with that assumption off.
    Otherwise it is this one.
    """
    resized_from = self.config.model.digit_resized_from
    if not resized_from or size == resized_from:
      return self
    config = ml_collections.ConfigDict(self.config.to_dict())
    config.model.digit_resized_from = 0
    model = models.create_model(config.model, 'float32')
    return Separator(self.state.replace(apply_fn=model.apply), config,
                     step=self.step, batch_size=self.batch_size)

  def mix_and_separate(self, digits: np.ndarray,
                       images: np.ndarray) -> Separation:
    """Mixes uint8 sources as training does, separates and scores them.

    ``--mode=separate`` and the demo page score through it; it mixes and
    aligns as the eval does (`mix_separate_align`). Digits of another size
    than the model assumes (see `for_digit_size`) are separated without
    that assumption.

    Args:
      digits: uint8 [N, 28, 28] (or [N, 32, 32]) grey digits; for a model
        of other sources, the first source's images.
      images: uint8 [N, 32, 32, 3] images; or the second source's.

    For two sources of one dataset the estimates come back in the order
    that matches the given sources best (as they are scored).
    """
    separator = self.for_digit_size(np.shape(digits)[1])
    mix, digit, image = mix_separate_align(
        lambda mixture: separator(np.asarray(mixture)), digits, images,
        self.pair)
    digit, image = np.asarray(digit), np.asarray(image)
    scores = jax.device_get(_score(digit, image, mix.first, mix.second))
    return Separation(mixture=np.asarray(mix.mixture), digit=digit,
                      image=image,
                      true_digit=np.asarray(mix.first),
                      true_image=np.asarray(mix.second), scores=scores)


def check_mixtures(mixtures: np.ndarray,
                   layout: sources.Layout = sources.DEFAULT.layout
                   ) -> np.ndarray:
  """Validates the separator's input; returns it as float32 numpy.

  Raises:
    InputError: describing what is wrong and what is expected.
  """
  size, _, channels = layout.shape
  expected = (f'float32 [N, {size}, {size}, {channels}] mixtures with values '
              'in [0, 1]')
  if not isinstance(mixtures, (np.ndarray, jax.Array)):
    raise InputError(f'mixtures must be a numpy array, got '
                     f'{type(mixtures).__name__}; expected {expected}')
  if not np.issubdtype(mixtures.dtype, np.floating):
    raise InputError(
        f'mixtures have dtype {mixtures.dtype}; expected {expected} (divide '
        'uint8 images by 255, or use mix_and_separate for uint8 sources)')
  if mixtures.shape[-3:] != layout.shape or mixtures.ndim not in (3, 4):
    what = 'RGB' if channels == 3 else 'grey'
    raise InputError(f'mixtures have shape {tuple(mixtures.shape)}; expected '
                     f'{expected} (resize to {size}x{size} {what} first)')
  x = np.asarray(mixtures, np.float32)
  if x.size == 0:
    raise InputError(f'mixtures are empty; expected {expected}')
  if not np.all(np.isfinite(x)):
    raise InputError(f'mixtures contain NaN or infinite values; expected '
                     f'{expected}')
  low, high = float(x.min()), float(x.max())
  if low < 0.0 or high > 1.0:
    raise InputError(f'mixture values span [{low:.3g}, {high:.3g}]; expected '
                     f'{expected}')
  return x
