"""Separator networks: one encoder, twin decoders (digit and CIFAR image).

Every model maps a mixture [N, 32, 32, 3] in [0, 1] to a pair
``(digit, image)`` of [N, 32, 32, 3] arrays in [0, 1] and is called as
``model.apply(variables, x, train=...)``. Select one with
``config.model.name``; `create_model` builds it from ``config.model``.
"""

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mixae_jax import conv
from mixae_jax.errors import ConfigError

NORMS = ('batch', 'group', 'none')

# nn.Conv with `conv.conv_general_dilated`: the same layer, parameters and
# names (checkpoints are unchanged), whose weight gradient trains faster on
# XLA:CPU (see mixae_jax/conv.py).
Conv = functools.partial(nn.Conv, conv_general_dilated=conv.conv_general_dilated)


def _norm(kind: str, train: bool, name: str | None = None) -> Callable:
  """A normalisation layer by name; BatchNorm momentum matches PyTorch's 0.1."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                        epsilon=1e-5, name=name)
  if kind == 'group':
    # 8 groups, or fewer for narrow layers so each group has >= 4 channels.
    return lambda x: nn.GroupNorm(
        num_groups=max(1, min(8, x.shape[-1] // 4)), name=name)(x)
  if kind == 'none':
    return lambda x: x
  raise ConfigError(f'model.norm={kind!r} is unknown; use one of {NORMS}')


# For a stride-2 transposed convolution, which kernel tap feeds output parity p
# from window offset d of a stride-1 convolution over the input (4 = a zero
# tap). Derived from lax.conv_transpose's definition; tests check it against
# nn.ConvTranspose.
_SUBPIXEL_TAPS = {
    # k=4, padding 2 on the dilated input (PyTorch's k=4, s=2, p=1): a 3x3
    # window over inputs m-1, m, m+1 for outputs 2m and 2m+1.
    4: (np.array([[0, 2, 4], [4, 1, 3]]), 1),
    # k=2, 'SAME': output 2m+p comes from input m through tap 1-p.
    2: (np.array([[1], [0]]), 0),
}


# For the same k=4 transposed convolution, the two taps (along one axis) that
# feed output parity p, and the padding that puts inputs m-1, m (p=0) or
# m, m+1 (p=1) under a 2-wide window at m: the dense window above without its
# zero tap.
_PHASE_TAPS = {0: (np.array([0, 2]), (1, 0)), 1: (np.array([1, 3]), (0, 1))}

# A k=4 UpConv2x with at least this many output features ('auto') computes
# each output parity as its own 2x2 convolution: exactly the transposed
# convolution's multiply-adds, where the dense 3x3 window does 9/4 of them
# (5 of its 9 taps are zero for each parity). On XLA:CPU the phases are the
# faster form at 16, 64 and 128 output features and the slower at 8, 3 and 1,
# where four small convolutions cost more than one 4x as wide
# (benchmarks/upconv_forms.py; seed004's train step x1.17, inference x1.4).
UPCONV_PHASES_MIN_FEATURES = 16
UPCONV_FORMS = ('auto', 'window', 'phases')


class UpConv2x(nn.Module):
  """A stride-2 ConvTranspose computed as sub-pixel convolution.

  The same function, parameters (``kernel`` [k, k, in, out], ``bias``) and
  initialisation as ``nn.ConvTranspose(features, (k, k), strides=(2, 2))``
  with padding ((2, 2), (2, 2)) for k=4 or 'SAME' for k=2; but evaluated with
  stride-1 convolutions and depth-to-space. On XLA:CPU the transposed
  convolution's gradient is several times slower than these forms
  (benchmarks/throughput.py). Two forms, the same function:

  - 'window': one convolution to 4x the channels over the window every
    output parity needs (1x1 for k=2, 3x3 for k=4, where each parity reads
    only 4 of the 9 taps and the rest are zero);
  - 'phases' (k=4 only): one 2x2 convolution per output parity, with only
    the taps it reads.

  'auto' takes 'phases' for k=4 with at least `UPCONV_PHASES_MIN_FEATURES`
  output features, 'window' otherwise.
  """
  features: int
  kernel_size: int
  form: str = 'auto'

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k, cin, cout = self.kernel_size, x.shape[-1], self.features
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (k, k, cin, cout))
    bias = self.param('bias', nn.initializers.zeros_init(), (cout,))
    form = self.form
    if form not in UPCONV_FORMS or (form == 'phases' and k != 4):
      raise ValueError(f'UpConv2x form={form!r} with kernel_size={k}; use one '
                       f"of {UPCONV_FORMS} ('phases' needs kernel_size=4)")
    if form == 'auto':
      phases = k == 4 and cout >= UPCONV_PHASES_MIN_FEATURES
      form = 'phases' if phases else 'window'
    kernel = kernel.astype(x.dtype)
    if form == 'phases':
      y = _upconv_phases(x, kernel)
    else:
      y = _upconv_window(x, kernel)
    n, h, _, wd, _, _ = y.shape  # [n, h, py, w, px, out]
    return y.reshape(n, 2 * h, 2 * wd, cout) + bias


def _upconv_window(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
  """UpConv2x's 'window' form, as [n, h, py, w, px, out]."""
  k, _, cin, cout = kernel.shape
  taps, pad = _SUBPIXEL_TAPS[k]
  window = taps.shape[1]
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # Tap k is zero.
  # [py, dy, px, dx, in, out] -> [dy, dx, in, (py, px, out)]
  w = padded[taps[:, :, None, None], taps[None, None, :, :]]
  w = w.transpose(1, 3, 4, 0, 2, 5).reshape(window, window, cin, 4 * cout)
  y = conv.conv_general_dilated(
      x, w, (1, 1), ((pad, pad), (pad, pad)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  n, h, wd, _ = y.shape
  return y.reshape(n, h, wd, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)


def _upconv_phases(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
  """UpConv2x's 'phases' form (k=4), as [n, h, py, w, px, out]."""
  rows = []
  for py in (0, 1):
    taps_y, pad_y = _PHASE_TAPS[py]
    parities = []
    for px in (0, 1):
      taps_x, pad_x = _PHASE_TAPS[px]
      parities.append(conv.conv_general_dilated(
          x, kernel[taps_y][:, taps_x], (1, 1), (pad_y, pad_x),
          dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
    rows.append(jnp.stack(parities, 3))  # [n, h, w, px, out]
  return jnp.stack(rows, 2)


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max pooling with stride 2, as ``nn.max_pool(x, (2, 2), (2, 2))``.

  The same function, written as a reshape and a max over the window axes. On
  XLA:CPU that is a plain reduction, while ``nn.max_pool``'s reduce-window
  and its gradient (an argmax over an index array as large as the input) run
  as slow scalar loops (benchmarks/throughput.py). The gradients differ only
  where a window holds tied maxima: this one shares the gradient among them,
  ``nn.max_pool`` gives it to one. In the U-Net a tie is a window of ReLU
  zeros, whose gradient the ReLU stops either way.
  """
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class Seed004(nn.Module):
  """The reference report's design (`references/004`), reproduced faithfully.

  Encoder: three Conv 4x4 stride 2 (3->64->128->256), each with BatchNorm,
  ReLU and Dropout 0.2; then Dense 512 and Dense 128 (the latent) with
  Dropout 0.5. Each decoder: Dense 512, Dense 4*4*256, then three
  ConvTranspose 4x4 stride 2 (256->128->64->3) with BatchNorm and ReLU, and a
  sigmoid at the end. About 8.5 M parameters.
  """
  latent_dim: int = 128
  dropout: float = 0.2
  latent_dropout: float = 0.5

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    h = x
    for features in (64, 128, 256):
      # padding 1 on each side, as PyTorch's Conv2d(k=4, s=2, p=1): 32->16->8->4.
      h = Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))(h)
      h = _norm('batch', train)(h)
      h = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(512)(h))
    z = nn.Dense(self.latent_dim)(h)
    z = nn.Dropout(self.latent_dropout, deterministic=not train)(z)
    return (self._decoder(z, train, 'digit'), self._decoder(z, train, 'image'))

  def _decoder(self, z: jnp.ndarray, train: bool, name: str) -> jnp.ndarray:
    h = nn.relu(nn.Dense(512, name=f'{name}_dense1')(z))
    h = nn.relu(nn.Dense(4 * 4 * 256, name=f'{name}_dense2')(h))
    h = h.reshape(h.shape[0], 4, 4, 256)
    for i, features in enumerate((128, 64, 3)):
      # PyTorch's ConvTranspose2d(k=4, s=2, p=1), doubling the size each time.
      h = UpConv2x(features, 4, name=f'{name}_deconv{i}')(h)
      if features != 3:
        h = nn.relu(_norm('batch', train, name=f'{name}_bn{i}')(h))
    return nn.sigmoid(h)


class ConcatConv(nn.Module):
  """A 3x3 'SAME' ``nn.Conv`` over the channel concatenation of its inputs.

  The same function, parameters (``kernel`` [3, 3, sum of in, out] and, with
  ``use_bias``, ``bias``) and initialisation as
  ``nn.Conv(features, (3, 3), use_bias=use_bias)(jnp.concatenate(xs, -1))``,
  but evaluated as one convolution per input, each with its slice of the
  kernel, summed. XLA:CPU then never builds the concatenation, nor its
  transposed copy for the weight gradient: the U-Net decoders' first
  convolutions (upsampled features beside the skip) train faster
  (docs/speed.md).
  """
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, xs: Sequence[jnp.ndarray]) -> jnp.ndarray:
    cin = sum(x.shape[-1] for x in xs)
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, cin, self.features))
    y, start = 0.0, 0
    for x in xs:
      stop = start + x.shape[-1]
      y = y + conv.conv_general_dilated(
          x, kernel[:, :, start:stop].astype(x.dtype), (1, 1), 'SAME',
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
      start = stop
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return y


class ConvBlock(nn.Module):
  """Two 3x3 convolutions, each followed by normalisation and ReLU.

  ``x`` may be a list of arrays: the block then convolves their channel
  concatenation (see `ConcatConv`), with the same parameters as if it had
  been given ``jnp.concatenate(x, -1)``.
  """
  features: int
  norm: str = 'group'

  @nn.compact
  def __call__(self, x: jnp.ndarray | Sequence[jnp.ndarray],
               train: bool = False) -> jnp.ndarray:
    use_bias = self.norm == 'none'
    for i in range(2):
      # Named as nn.Conv names itself, so that checkpoints are the same
      # whichever form the first convolution takes.
      if i == 0 and isinstance(x, (list, tuple)):
        x = ConcatConv(self.features, use_bias=use_bias, name='Conv_0')(x)
      else:
        x = Conv(self.features, (3, 3), use_bias=use_bias,
                 name=f'Conv_{i}')(x)
      x = nn.relu(_norm(self.norm, train)(x))
    return x


class UNetDecoder(nn.Module):
  """Upsamples the shared bottleneck, merging the shared encoder's skips."""
  widths: Sequence[int]
  out_channels: int
  norm: str = 'group'

  @nn.compact
  def __call__(self, h: jnp.ndarray, skips: Sequence[jnp.ndarray],
               train: bool = False) -> jnp.ndarray:
    for features, skip in zip(reversed(self.widths[:-1]), reversed(skips)):
      h = UpConv2x(features, 2)(h)  # = nn.ConvTranspose(features, (2, 2), (2, 2))
      h = ConvBlock(features, self.norm)([h, skip], train)
    h = Conv(self.out_channels, (1, 1))(h)
    h = nn.sigmoid(h)
    # A grey digit needs one channel; repeat it so every output is RGB.
    return jnp.broadcast_to(h, h.shape[:-1] + (3,)) if h.shape[-1] == 1 else h


HEADS = ('twin', 'consistent', 'derive')

# Steps of the primal-dual solver in `project_digit` at inference, and its
# dual step size (times the upsampling's squared norm). On the released
# model's 10,000 eval pairs (benchmarks/head_projections.py) 30 steps score
# what 100 and 300 do (34.163 dB), with no image further from the truth than
# the clip left it; they cost about 6% of inference (benchmarks/head_cost.py).
PROJECTION_STEPS = 30
PROJECTION_DUAL_STEP = 10.0
# Steps in training (``train=True``), where the solver runs forward and back
# every step: 10 come within 0.003 dB of 30 and cost under 3% of the step.
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
               image: jnp.ndarray | None, grey_digit: bool = False,
               digit_resized_from: int = 0,
               projection_steps: int = PROJECTION_STEPS
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Turns decoder outputs into the (digit, image) estimates.

  Args:
    head: 'twin' returns both decoders' outputs as they are. 'consistent'
      projects them onto the pairs whose mean is the mixture (least squares),
      then onto those with both sources in [0, 1] and, with
      `digit_resized_from`, a digit upsampled from that size
      (`project_digit`). 'derive' uses only the digit and sets the image
      to ``2 * mixture - digit``, clipped to [0, 1].
    mixture: the network's input [N, 32, 32, 3].
    digit: the digit decoder's output.
    image: the image decoder's output (None for 'derive').
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
    return (jnp.broadcast_to(digit, mixture.shape),
            jnp.clip(2.0 * mixture - digit, 0.0, 1.0))
  if head == 'derive':
    # Clipping can only move an estimate closer to a truth that lies in [0, 1].
    return digit, jnp.clip(2.0 * mixture - digit, 0.0, 1.0)
  raise ConfigError(f'model.head={head!r} is unknown; use one of {HEADS}')


class UNet(nn.Module):
  """A shared U-Net encoder whose skip connections feed both decoders.

  ``widths`` gives the channels per resolution level (32x32, 16x16, ...); the
  last entry is the bottleneck. ``digit_channels=1`` predicts a grey digit
  and repeats it to RGB. ``head`` combines the decoders (see `apply_head`,
  which ``digit_resized_from`` is passed to); with 'derive' there is no
  image decoder at all.
  """
  widths: Sequence[int] = (32, 64, 128)
  norm: str = 'group'
  digit_channels: int = 3
  head: str = 'twin'
  digit_resized_from: int = 0

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    skips = []
    h = x
    for features in self.widths[:-1]:
      h = ConvBlock(features, self.norm)(h, train)
      skips.append(h)
      h = max_pool_2x2(h)
    h = ConvBlock(self.widths[-1], self.norm)(h, train)
    decoder = functools.partial(UNetDecoder, self.widths, norm=self.norm)
    digit = decoder(self.digit_channels, name='digit_decoder')(h, skips, train)
    image = (None if self.head == 'derive' else
             decoder(3, name='image_decoder')(h, skips, train))
    return apply_head(self.head, x, digit, image,
                      grey_digit=self.digit_channels == 1,
                      digit_resized_from=self.digit_resized_from,
                      projection_steps=(PROJECTION_TRAIN_STEPS if train
                                        else PROJECTION_STEPS))


class MixtureAE(nn.Module):
  """References 001/002: an autoencoder of the mixture itself, one decoder.

  Reference 002's layers (its weight shapes), on 3-channel 32x32 input:
  Conv 3x3 s2 (16), Conv 3x3 s2 (32), Conv 7x7 valid (64) to a 2x2x64 code;
  then ConvTranspose 7x7 (32), 3x3 s2 (16), 3x3 s2 (3) and a sigmoid. It
  never separates: its one reconstruction is returned as both estimates.
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    del train  # No dropout or normalisation.
    h = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))(x))
    h = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))(h))
    h = nn.Conv(64, (7, 7), padding='VALID')(h)  # 8x8 -> 2x2
    # PyTorch ConvTranspose2d(k, s, p, output_padding=op) pads the dilated
    # input by (k-1-p, k-1-p+op): (6, 6) for k=7, p=0; (1, 2) for k=3, p=op=1.
    h = nn.relu(nn.ConvTranspose(32, (7, 7), padding=((6, 6), (6, 6)))(h))
    h = nn.relu(nn.ConvTranspose(16, (3, 3), strides=(2, 2),
                                 padding=((1, 2), (1, 2)))(h))
    h = nn.ConvTranspose(3, (3, 3), strides=(2, 2), padding=((1, 2), (1, 2)))(h)
    recon = nn.sigmoid(h)
    return recon, recon


class DigitAE(nn.Module):
  """Reference 003: a plain MNIST convolutional autoencoder, 64-d latent.

  Encoder: Conv 3x3 s2 (16, 32, 64) with ReLU, then a global average to a
  64-d code. Decoder: ConvTranspose 4x4 (32) to 4x4, then three 4x4 s2 ones
  (16, 8, 1) to 32x32 (the reference's 28x28 layout, one level deeper). The
  output is linear, as in the reference, while training (a sigmoid there
  saturates and the network settles on an all-black digit); at inference it
  is clipped to [0, 1]. It sees the grey (channel-mean) input. On a mixture,
  its output is the digit estimate and the image is derived as
  ``2 * mixture - digit`` (the 'derive' head).
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False):
    h = jnp.mean(x, axis=-1, keepdims=True)
    for features in (16, 32, 64):
      h = nn.relu(nn.Conv(features, (3, 3), strides=(2, 2),
                          padding=((1, 1), (1, 1)))(h))
    z = jnp.mean(h, axis=(1, 2), keepdims=True)  # [N, 1, 1, 64]
    h = nn.relu(nn.ConvTranspose(32, (4, 4), padding=((3, 3), (3, 3)))(z))
    for features in (16, 8):
      h = nn.relu(UpConv2x(features, 4)(h))
    digit = UpConv2x(1, 4)(h)
    if not train:
      digit = jnp.clip(digit, 0.0, 1.0)
    return apply_head('derive', x, jnp.broadcast_to(digit, x.shape), None)


MODELS = ('seed004', 'unet', 'mixture_ae', 'digit_ae')


def create_model(model_config: ml_collections.ConfigDict) -> nn.Module:
  """Builds the model named by ``model_config.name`` from its settings.

  Raises:
    ConfigError: an unknown model name or norm, or nonsensical sizes.
  """
  name = model_config.name
  if name == 'seed004':
    return Seed004()
  if name == 'mixture_ae':
    return MixtureAE()
  if name == 'digit_ae':
    return DigitAE()
  if name == 'unet':
    widths = tuple(model_config.widths)
    if (len(widths) < 2 or not all(isinstance(w, int) for w in widths)
        or min(widths) < 1):
      raise ConfigError(f'model.widths={widths} needs at least two positive '
                        'entries (one level plus the bottleneck)')
    if 32 % 2 ** (len(widths) - 1):
      raise ConfigError(f'model.widths has {len(widths)} levels; 32x32 images '
                        'allow at most 6')
    if model_config.norm not in NORMS:
      raise ConfigError(f'model.norm={model_config.norm!r} is unknown; use one '
                        f'of {NORMS}')
    if model_config.digit_channels not in (1, 3):
      raise ConfigError(f'model.digit_channels={model_config.digit_channels} '
                        'must be 1 (grey, repeated) or 3')
    # Runs saved before model.head existed were all 'twin'.
    head = model_config.get('head', 'twin')
    if head not in HEADS:
      raise ConfigError(f'model.head={head!r} is unknown; use one of {HEADS}')
    # Runs saved before it existed knew no such prior.
    resized_from = model_config.get('digit_resized_from', 0)
    if (isinstance(resized_from, bool) or not isinstance(resized_from, int)
        or not 0 <= resized_from < 32):
      raise ConfigError(f'model.digit_resized_from={resized_from!r} must be '
                        'the size the digits were upsampled from (28 for '
                        'MNIST), or 0 if not known')
    return UNet(widths=widths, norm=model_config.norm,
                digit_channels=model_config.digit_channels,
                head=head, digit_resized_from=resized_from)
  raise ConfigError(f'model.name={name!r} is unknown; use one of {MODELS}')
