"""The separation heads: decoder outputs -> (digit, image) estimates.

A head uses what is known of every true pair: the mixture is the two
sources' mean, both lie in [0, 1], and the digit is grey and upsampled from
28x28. Projecting onto those sets never moves an estimate away from the
truth (`project_digit`); `apply_head` combines them by name.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mixae_jax.errors import ConfigError

# By ``config.model.head`` (`apply_head`).
HEADS = ('twin', 'consistent')

# Steps of the primal-dual solver in `project_digit` at inference, and its
# dual step size (times the upsampling's squared norm): as many steps as
# converge on the released model's eval pairs (docs/speed.md).
PROJECTION_STEPS = 30
PROJECTION_DUAL_STEP = 10.0
# Steps in training (``train=True``), where the solver runs forward and back
# every step: fewer, since it is differentiated through at every step.
PROJECTION_TRAIN_STEPS = 10


@functools.lru_cache(maxsize=None)
def upsampling_matrix(size_from: int, size_to: int
                      ) -> tuple[np.ndarray, np.ndarray, float]:
  """Bilinear 1-D upsampling from ``size_from`` to ``size_to`` samples.

  `preprocessing.digits_to_rgb32` upsamples MNIST this way along both axes:
  ``X -> A X A^T``.

  Returns:
    ``A`` (float32 [size_to, size_from], full column rank, rows summing to
    1), its pseudo-inverse (float32 [size_from, size_to]) and the largest
    singular value of ``A``, squared (the norm of ``X -> A X A^T``).
  """
  with jax.ensure_compile_time_eval():  # Constants, even under jit.
    a = np.asarray(jax.image.resize(jnp.eye(size_from, dtype=jnp.float32),
                                    (size_to, size_from), 'bilinear'),
                   np.float64)
  return (a.astype(np.float32), np.linalg.pinv(a).astype(np.float32),
          float(np.linalg.norm(a, 2) ** 2))


def _resample(m: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
  """``M X M^T`` for each image and channel of x [N, H, W, C]."""
  # Full float32 precision: on a GPU the default may round to TF32.
  return jnp.einsum('ij,njkc,lk->nilc', m, x, m,
                    precision=jax.lax.Precision.HIGHEST)


def project_digit(mixture: jnp.ndarray, digit: jnp.ndarray,
                  resized_from: int, steps: int = PROJECTION_STEPS
                  ) -> jnp.ndarray:
  """Moves a digit estimate into the set the true digit is known to lie in.

  The true digit is an image of ``resized_from`` x ``resized_from`` pixels
  in [0, 1], bilinearly upsampled to 32 x 32 (the task's definition,
  `preprocessing`); and with the image it keeps both sources in [0, 1]
  (`feasible_digit`). Both sets are convex and hold the truth, so the
  nearest point of their intersection is never further from the truth than
  the estimate, image by image in the sum of squares. The feasible clip is
  that projection for the second set alone; with ``resized_from`` the
  projection onto the intersection,

    min over X in [0, 1]^(s x s) of |A X A^T - digit|^2
    subject to A X A^T feasible,

  is solved by ``steps`` steps of the primal-dual method of Chambolle and
  Pock, started from the clipped least-squares pre-image, and the result
  clipped to the feasible values once more (the iterates meet the
  constraint only in the limit).

  Args:
    mixture: [N, H, W, 3] in [0, 1].
    digit: [N, H, W, 1] (grey) or [N, H, W, 3] estimate.
    resized_from: the digit's size before upsampling; 0: no such knowledge
      (only `feasible_digit`).
    steps: steps of the solver.

  Returns:
    The projected digit; its shape.
  """
  lo, hi = feasible_bounds(mixture, digit.shape[-1])
  digit = jnp.clip(digit, lo, hi)
  if not resized_from:
    return digit
  a, a_pinv, norm = upsampling_matrix(resized_from, digit.shape[1])
  a, a_pinv = jnp.asarray(a), jnp.asarray(a_pinv)
  # Dual and primal step sizes with sigma * tau * norm^2 < 1 (convergence).
  sigma = PROJECTION_DUAL_STEP / norm
  tau = 0.99 / (PROJECTION_DUAL_STEP * norm)

  def step(_, carry):
    x, x_bar, y = carry
    # Dual ascent on the upsampled image: the proximal map of
    # z -> |z - digit|^2 / 2 restricted to [lo, hi] is a scaled clip.
    v = y + sigma * _resample(a, x_bar)
    y = v - sigma * jnp.clip((digit + v) / (1.0 + sigma), lo, hi)
    # Primal descent on the pre-image, kept in [0, 1].
    x_next = jnp.clip(x - tau * _resample(a.T, y), 0.0, 1.0)
    return x_next, 2.0 * x_next - x, y

  x = jnp.clip(_resample(a_pinv, digit), 0.0, 1.0)
  x, _, _ = jax.lax.fori_loop(0, steps, step, (x, x, jnp.zeros_like(digit)))
  return jnp.clip(_resample(a, x), lo, hi)


def feasible_bounds(mixture: jnp.ndarray, channels: int
                    ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The digit values that keep both sources in [0, 1] (see `feasible_digit`).

  Args:
    mixture: [N, H, W, 3] in [0, 1].
    channels: the digit estimate's channels: 1 (grey) or 3.

  Returns:
    (lo, hi), each [N, H, W, channels], with lo <= hi.
  """
  lo = 2.0 * mixture - 1.0
  hi = 2.0 * mixture
  if channels == 1:
    lo = jnp.max(lo, axis=-1, keepdims=True)
    hi = jnp.min(hi, axis=-1, keepdims=True)
  lo, hi = jnp.maximum(lo, 0.0), jnp.minimum(hi, 1.0)
  # lo > hi by rounding where the truth pins the digit (an image channel at 0
  # beside one at 1), or where no value fits; between the two is then best.
  return jnp.minimum(lo, hi), jnp.maximum(lo, hi)


def feasible_digit(mixture: jnp.ndarray, digit: jnp.ndarray) -> jnp.ndarray:
  """Clips a digit estimate to the values that keep both sources in [0, 1].

  With ``image = 2 * mixture - digit``, both lie in [0, 1] exactly when
  ``2 * mixture - 1 <= digit <= 2 * mixture`` as well as ``0 <= digit <= 1``;
  a grey (1-channel) digit must meet that in every channel at once. The true
  digit of a real mixture always does, so this clip can only bring either
  source closer to the truth, pixel by pixel and channel by channel, and
  keeps the estimates' mean equal to the mixture. Where no value fits (an
  input that is no such mixture: channels more than 0.5 apart), it clips
  to between the two bounds, where the image's overshoot past [0, 1] is
  least (a pure red mixture: [0, 1]).

  Args:
    mixture: [N, H, W, 3] in [0, 1].
    digit: [N, H, W, 1] (grey) or [N, H, W, 3] estimate.

  Returns:
    `digit`, clipped; its shape.
  """
  lo, hi = feasible_bounds(mixture, digit.shape[-1])
  return jnp.clip(digit, lo, hi)


def apply_head(head: str, mixture: jnp.ndarray, digit: jnp.ndarray,
               image: jnp.ndarray, grey_digit: bool,
               digit_resized_from: int, projection_steps: int
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Turns decoder outputs into the (digit, image) estimates.

  Args:
    head: 'twin' returns both decoders' outputs as they are. 'consistent'
      projects them onto the pairs whose mean is the mixture (least squares),
      then onto those with both sources in [0, 1] and, with
      `digit_resized_from`, a digit upsampled from that size
      (`project_digit`).
    mixture: the network's input [N, 32, 32, 3].
    digit: the digit decoder's output.
    image: the image decoder's output.
    grey_digit: the digit decoder predicts one grey channel; 'consistent'
      then also keeps the digit grey, which the true digit always is.
    digit_resized_from: for 'consistent': the true digit was upsampled from
      this size (28 for MNIST); 0: not known.
    projection_steps: the solver's steps in `project_digit`.

  Returns:
    (digit, image), both [N, 32, 32, 3] in [0, 1].
  """
  if head == 'twin':
    return digit, image
  if head == 'consistent':
    if grey_digit:
      # Minimises 3 (d - digit)^2 + |2 mixture - d - image|^2 over grey d:
      # the mean of the two grey estimates of the digit.
      d = 0.5 * (digit[..., :1] + jnp.mean(2.0 * mixture - image, axis=-1,
                                            keepdims=True))
    else:
      d = digit + mixture - 0.5 * (digit + image)
    digit = project_digit(mixture, d, digit_resized_from, projection_steps)
    return (jnp.broadcast_to(digit, mixture.shape), derive_image(mixture, digit))
  raise ConfigError(f'model.head={head!r} is unknown; use one of {HEADS}')


def derive_image(mixture: jnp.ndarray, digit: jnp.ndarray) -> jnp.ndarray:
  """The image a digit estimate leaves of the mixture: 2 * mixture - digit.

  Clipped to [0, 1]: clipping can only move it closer to a truth there.
  """
  return jnp.clip(2.0 * mixture - digit, 0.0, 1.0)
