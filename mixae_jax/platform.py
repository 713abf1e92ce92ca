"""Platform tuning: what makes XLA:CPU train this project's networks faster.

Nothing here runs on import. Two kinds of tuning, each measured side by
side against the plain form (docs/speed.md) and each applied only where it
pays:

  * **Process settings** (`apply_process_tuning`): ``XLA_FLAGS``
    (`XLA_CPU_FLAGS`), read once when JAX starts its backend, so only the
    command line applies them, first thing, and only when JAX will run on
    the CPU. (glibc's huge-page tunable, applied by a restart before, no
    longer paid on the 2026-12-01 machine and was dropped: docs/speed.md.)
  * **Layer forms** (`layer_forms`): faster CPU equivalents of flax layers,
    with the same parameters and the same function, which the trainer and
    the evaluation inject into the models on a CPU backend
    (``models.create_model(config.model, **layer_forms())``).

``MIXAE_PLATFORM_TUNING=0`` turns all of it off: the models then use flax's
layers and XLA its defaults. A flag the user set in ``XLA_FLAGS`` is never
overridden.
"""

import importlib.metadata
import os
from typing import Any, Mapping, MutableMapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

SWITCH = 'MIXAE_PLATFORM_TUNING'


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether platform tuning is on (``MIXAE_PLATFORM_TUNING`` is not '0')."""
  return environ.get(SWITCH, '1') != '0'


# -- Layer forms --------------------------------------------------------------

# For a stride-2 transposed convolution, which kernel tap feeds output parity
# p from window offset d of a stride-1 convolution over the input (k = a zero
# tap). Derived from lax.conv_transpose's definition; tests check it against
# nn.ConvTranspose.
_SUBPIXEL_TAPS = {
    # k=4, padding 2 on the dilated input (PyTorch's k=4, s=2, p=1): a 3x3
    # window over inputs m-1, m, m+1 for outputs 2m and 2m+1.
    4: (np.array([[0, 2, 4], [4, 1, 3]]), 1),
    # k=2, 'SAME': output 2m+p comes from input m through tap 1-p.
    2: (np.array([[1], [0]]), 0),
}
# For the k=4 transposed convolution, the two taps (along one axis) that
# feed output parity p, and the padding that puts inputs m-1, m (p=0) or
# m, m+1 (p=1) under a 2-wide window at m.
_PHASE_TAPS = {0: (np.array([0, 2]), (1, 0)), 1: (np.array([1, 3]), (0, 1))}
# A k=4 layer with at least this many output features computes each output
# parity as its own 2x2 convolution; narrower ones use one convolution over
# the 3x3 window (docs/speed.md).
PHASES_MIN_FEATURES = 16
_PADDINGS = {4: ((2, 2), (2, 2)), 2: 'SAME'}


def _conv(x: jax.Array, kernel: jax.Array, padding: Any) -> jax.Array:
  return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class SubpixelConvTranspose(nn.Module):
  """``nn.ConvTranspose`` with stride 2, computed as stride-1 convolutions.

  The same function, parameters (``kernel`` [k, k, in, out], ``bias``) and
  initialisation as ``nn.ConvTranspose(features, (k, k), strides=(2, 2),
  padding=...)`` for the two layers the models use: k=4 with padding
  ((2, 2), (2, 2)) (PyTorch's k=4, s=2, p=1) and k=2 with 'SAME'. Each
  output parity reads only some kernel taps; XLA:CPU's transposed
  convolution and its gradient do not exploit that, these forms do:

    * 'window': one convolution to 4x the channels over the window every
      parity needs (1x1 for k=2; 3x3 for k=4, 4 of whose 9 taps are live);
    * 'phases' (k=4, at least `PHASES_MIN_FEATURES` outputs): one 2x2
      convolution per parity, with only its taps.

  Then depth-to-space. Called with ``nn.ConvTranspose``'s arguments.
  """
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (2, 2)
  padding: Any = 'SAME'
  use_bias: bool = True
  dtype: Any = None  # The computation's; None: the input's.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.dtype is not None:
      x = x.astype(self.dtype)
    k = self.kernel_size[0]
    if (tuple(self.kernel_size) != (k, k) or k not in _PADDINGS
        or tuple(self.strides) != (2, 2) or self.padding != _PADDINGS[k]):
      raise ValueError(
          f'SubpixelConvTranspose supports kernel (4, 4) with padding '
          f'((2, 2), (2, 2)) or (2, 2) with SAME, stride 2; got '
          f'{self.kernel_size}, {self.padding}, {self.strides}')
    cin, cout = x.shape[-1], self.features
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, cin, cout)).astype(x.dtype)
    if k == 4 and cout >= PHASES_MIN_FEATURES:
      y = _upconv_phases(x, kernel)
    else:
      y = _upconv_window(x, kernel)
    n, h, _, w, _, _ = y.shape  # [n, h, py, w, px, out]
    y = y.reshape(n, 2 * h, 2 * w, cout)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros_init(), (cout,))
    return y


def _upconv_window(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 'window' form, as [n, h, py, w, px, out]."""
  k, _, cin, cout = kernel.shape
  taps, pad = _SUBPIXEL_TAPS[k]
  window = taps.shape[1]
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # Tap k is zero.
  # [py, dy, px, dx, in, out] -> [dy, dx, in, (py, px, out)]
  w = padded[taps[:, :, None, None], taps[None, None, :, :]]
  w = w.transpose(1, 3, 4, 0, 2, 5).reshape(window, window, cin, 4 * cout)
  y = _conv(x, w, ((pad, pad), (pad, pad)))
  n, h, wd, _ = y.shape
  return y.reshape(n, h, wd, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)


def _upconv_phases(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The 'phases' form (k=4), as [n, h, py, w, px, out]."""
  rows = []
  for py in (0, 1):
    taps_y, pad_y = _PHASE_TAPS[py]
    parities = []
    for px in (0, 1):
      taps_x, pad_x = _PHASE_TAPS[px]
      parities.append(_conv(x, kernel[taps_y][:, taps_x], (pad_y, pad_x)))
    rows.append(jnp.stack(parities, 3))  # [n, h, w, px, out]
  return jnp.stack(rows, 2)


# The CPU forms, by the model field each replaces. Only what pays today
# (docs/speed.md): a fusion barrier before each weight gradient, max pooling
# as a reshape and a max, and the decoders' convolutions split over their
# concatenated inputs no longer did, and were dropped.
CPU_LAYER_FORMS = {
    'conv_transpose': SubpixelConvTranspose,
}


def layer_forms(backend: str | None = None,
                environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
  """The layer constructors to inject into the models on this backend.

  Args:
    backend: 'cpu', 'gpu', 'tpu'; `jax.default_backend()` when None.
    environ: where the ``MIXAE_PLATFORM_TUNING`` switch is read.

  Returns:
    `CPU_LAYER_FORMS` on a CPU backend with tuning on, else ``{}`` (flax's
    own layers).
  """
  backend = jax.default_backend() if backend is None else backend
  return dict(CPU_LAYER_FORMS) if backend == 'cpu' and enabled(environ) else {}


# -- Process settings ---------------------------------------------------------

# YNNPACK library fusions for XLA:CPU: matrix products and reductions, not
# convolutions (XLA's own Eigen convolutions are faster here, and YNNPACK's
# reductions make BatchNorm's sums fast).
XLA_CPU_FLAGS = {'--xla_cpu_experimental_ynn_fusion_type': 'individual_dot,reduce'}
# jaxlib versions [low, high) known to have those flags: XLA stops a process
# on a flag it does not know.
SUPPORTED_JAXLIB = ((0, 10), (0, 12))
# Distributions that give JAX an accelerator backend: with one installed the
# process may not run on the CPU, and the CPU settings stay off.
_ACCELERATOR_PLUGINS = ('jax-cuda', 'jax_cuda', 'jax-rocm', 'jax_rocm',
                        'libtpu')


def _installed_versions() -> dict[str, str]:
  return {(d.metadata['Name'] or '').lower(): d.version
          for d in importlib.metadata.distributions()}


def will_run_on_cpu(environ: Mapping[str, str],
                    installed: Mapping[str, str]) -> bool:
  """Whether JAX's default backend will be the CPU, decided before it starts.

  ``JAX_PLATFORMS`` decides when set; otherwise the CPU is the backend when
  no accelerator plugin is installed.
  """
  platforms = environ.get('JAX_PLATFORMS', '')
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not any(name.startswith(_ACCELERATOR_PLUGINS) for name in installed)


def _version(text: str | None) -> tuple[int, ...] | None:
  try:
    return tuple(int(p) for p in text.split('.')[:2])
  except (AttributeError, ValueError):
    return None


def tuned_xla_flags(environ: Mapping[str, str],
                    jaxlib_version: tuple[int, ...] | None) -> str | None:
  """The ``XLA_FLAGS`` value with `XLA_CPU_FLAGS` added, or None to leave it.

  Flags the user already set win; an unknown jaxlib gets none.
  """
  low, high = SUPPORTED_JAXLIB
  if jaxlib_version is None or not low <= jaxlib_version < high:
    return None
  current = environ.get('XLA_FLAGS', '')
  added = [f'{k}={v}' for k, v in XLA_CPU_FLAGS.items() if k not in current]
  return ' '.join([current, *added]).strip() if added else None


def apply_process_tuning(environ: MutableMapping[str, str] = os.environ
                         ) -> None:
  """Applies the process settings; call first thing in an entry point.

  Does nothing when tuning is off or JAX will not run on the CPU. Otherwise
  sets ``XLA_FLAGS`` before JAX starts its backend. Never call it from a
  library or a notebook.
  """
  installed = _installed_versions()
  if not enabled(environ) or not will_run_on_cpu(environ, installed):
    return
  flags = tuned_xla_flags(environ, _version(installed.get('jaxlib')))
  if flags is not None:
    environ['XLA_FLAGS'] = flags
