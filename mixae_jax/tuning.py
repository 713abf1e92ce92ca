"""Platform tuning: what makes XLA:CPU train this project's networks faster.

Nothing here runs on import. Two kinds of tuning, each applied only where
it pays (the measurements: docs/speed.md):

  * **Process settings** (`apply_process_tuning`): ``XLA_FLAGS``
    (`XLA_CPU_FLAGS`), read once when JAX starts its backend, so only the
    command line applies them, first thing, and only when JAX will run on
    the CPU.
  * **Layer forms** (`layer_forms`): which faster equivalents of flax
    layers (`models.layers`, same parameters, same function) the trainer
    and the evaluation inject into the models on this backend
    (``models.create_model(config.model, dtype, **layer_forms())``).

``MIXAE_PLATFORM_TUNING=0`` turns all of it off: the models then use flax's
layers and XLA its defaults. A flag the user set in ``XLA_FLAGS`` is never
overridden.
"""

import importlib.metadata
import os
from typing import Any, Mapping, MutableMapping

import jax

from mixae_jax.models import layers

SWITCH = 'MIXAE_PLATFORM_TUNING'


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether platform tuning is on (``MIXAE_PLATFORM_TUNING`` is not '0')."""
  return environ.get(SWITCH, '1') != '0'


# -- Layer forms --------------------------------------------------------------

# The CPU forms, by the model field each replaces: only what pays
# (docs/speed.md).
CPU_LAYER_FORMS = {
    'conv_transpose': layers.SubpixelConvTranspose,
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
