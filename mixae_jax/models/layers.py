"""What the models share: the layer-constructor type and normalisation by name."""

from typing import Any, Callable

import flax.linen as nn

from mixae_jax.errors import ConfigError

# A layer constructor, as flax's examples inject them: called with the
# layer's settings, it returns a module (e.g. `nn.Conv`, or a faster form of
# it with the same parameters from `mixae_jax.platform`).
ModuleDef = Any

NORMS = ('batch', 'group', 'none')


def batch_norm(train: bool, name: str | None = None,
               dtype: Any = None) -> nn.Module:
  """BatchNorm with PyTorch's defaults (momentum 0.1, epsilon 1e-5).

  Its statistics and parameters stay float32; `dtype` is its output's
  (None: the input's and the parameters' promoted type).
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, dtype=dtype, name=name)


def norm_layer(kind: str, train: bool, dtype: Any = None) -> Callable:
  """A normalisation layer by name: 'batch', 'group' or 'none'."""
  if kind == 'batch':
    return batch_norm(train, dtype=dtype)
  if kind == 'group':
    # 8 groups, or fewer for narrow layers so each group has >= 4 channels.
    return lambda x: nn.GroupNorm(num_groups=max(1, min(8, x.shape[-1] // 4)),
                                  dtype=dtype)(x)
  if kind == 'none':
    return lambda x: x
  raise ConfigError(f'model.norm={kind!r} is unknown; use one of {NORMS}')
