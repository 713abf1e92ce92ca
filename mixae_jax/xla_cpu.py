"""XLA:CPU settings that make this project's networks train faster.

jaxlib 0.10 hands CPU convolutions to YNNPACK by default. On the project's
machine (2-core AMD EPYC with AVX-512) XLA's own Eigen convolutions run the
U-Net's train step about 1.3x faster (63 -> 80 img/s at batch 128, inference
173 -> 293 img/s; compare ``MIXAE_XLA_CPU_DEFAULTS=1 python
benchmarks/throughput.py`` with the plain command), so
importing `mixae_jax` keeps YNNPACK for matrix products and gives it the
reductions too: XLA's own code for a BatchNorm's sums over (batch, height,
width) is a scalar loop, about 10x slower than YNNPACK's (128x16x16x64:
0.92 -> 0.08 ms), worth 5-6% of the U-Net's train step. The result is the
same math: only the kernels' summation order changes.

The setting goes into ``XLA_FLAGS``, which XLA reads when JAX starts its first
backend; `mixae_jax` therefore applies it on import. It is left alone when:
  * ``XLA_FLAGS`` already names the flag (the user's choice wins);
  * ``MIXAE_XLA_CPU_DEFAULTS=1`` is set (keep XLA's defaults);
  * the installed jaxlib is outside the versions it was measured on, since
    XLA stops a process on a flag it does not know.
"""

import os
from typing import MutableMapping

# YNNPACK library fusions to use: matrix products and reductions, not
# convolutions.
YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
YNN_VALUE = 'individual_dot,reduce'
OPT_OUT_VAR = 'MIXAE_XLA_CPU_DEFAULTS'
# jaxlib versions [low, high) known to have the flag.
SUPPORTED_JAXLIB = ((0, 10), (0, 12))


def _jaxlib_version() -> tuple[int, ...] | None:
  """The installed jaxlib's (major, minor), read without importing it."""
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    parts = metadata.version('jaxlib').split('.')[:2]
    return tuple(int(p) for p in parts)
  except (metadata.PackageNotFoundError, ValueError):
    return None


def tuned_flags(environ: MutableMapping[str, str],
                jaxlib_version: tuple[int, ...] | None) -> str | None:
  """The ``XLA_FLAGS`` value to use, or None to leave it as it is.

  Args:
    environ: the process environment (read only here).
    jaxlib_version: the installed jaxlib's (major, minor), None if unknown.

  Returns:
    The current ``XLA_FLAGS`` with the YNNPACK setting appended, or None
    where one of the module docstring's exceptions applies.
  """
  current = environ.get('XLA_FLAGS', '')
  low, high = SUPPORTED_JAXLIB
  if (environ.get(OPT_OUT_VAR) == '1' or YNN_FLAG in current
      or jaxlib_version is None or not low <= jaxlib_version < high):
    return None
  return f'{current} {YNN_FLAG}={YNN_VALUE}'.strip()


def apply(environ: MutableMapping[str, str] = os.environ) -> bool:
  """Adds the tuned flag to ``environ['XLA_FLAGS']``; True if it changed.

  Takes effect only if JAX has not yet started a backend in this process.
  """
  flags = tuned_flags(environ, _jaxlib_version())
  if flags is None:
    return False
  environ['XLA_FLAGS'] = flags
  return True
