"""Separator networks: a mixture in, a (digit, image) pair out.

Every model maps a mixture [N, 32, 32, 3] in [0, 1] to a pair
``(digit, image)`` of [N, 32, 32, 3] arrays in [0, 1] and is called as
``model.apply(variables, x, train=...)``. `create_model` builds the one
``config.model.name`` names:

  * ``unet`` (`unet.UNet`): the default; shared encoder, twin decoders and
    a head that keeps the estimates consistent with the mixture (`heads`);
  * ``seed004``, ``mixture_ae``, ``digit_ae`` (`reference`): the reference
    reports' designs, kept as baselines.
"""

import inspect

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from mixae_jax.errors import ConfigError
from mixae_jax.models.heads import HEADS
from mixae_jax.models.layers import ModuleDef
from mixae_jax.models.reference import DigitAE, MixtureAE, Seed004
from mixae_jax.models.unet import ACTIVATIONS, DECODERS, UNet, is_edge_layer

MODELS = {'unet': UNet, 'seed004': Seed004, 'mixture_ae': MixtureAE,
          'digit_ae': DigitAE}


# What ``config.dtype`` may name: the U-Net's activations and convolutions.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def create_model(model_config: ml_collections.ConfigDict,
                 dtype: str, **layers: ModuleDef) -> nn.Module:
  """Builds the model named by ``model_config.name`` from its settings.

  Args:
    model_config: ``config.model``.
    dtype: ``config.dtype``, a key of `DTYPES`: the U-Net's computation
      (parameters and outputs stay float32); the reference designs take
      float32 only.
    **layers: layer constructors to use instead of flax's (``conv``,
      ``conv_transpose``; see `mixae_jax.tuning.layer_forms`);
      a model takes those it has and ignores the rest. They compute the same
      function with the same parameters.

  Raises:
    ConfigError: an unknown model name or head, or nonsensical sizes.
  """
  name = model_config.name
  if name not in MODELS:
    raise ConfigError(f'model.name={name!r} is unknown; use one of '
                      f'{tuple(MODELS)}')
  if dtype not in DTYPES:
    raise ConfigError(f'dtype={dtype!r} is unknown; use one of {tuple(DTYPES)}')
  cls = MODELS[name]
  fields = inspect.signature(cls).parameters
  layers = {k: v for k, v in layers.items() if k in fields}
  if name != 'unet':
    if dtype != 'float32':
      raise ConfigError(f'dtype={dtype!r} needs model.name=unet; the '
                        f'reference design {name!r} runs in float32')
    return cls(**layers)
  return UNet(**_unet_settings(model_config), dtype=DTYPES[dtype], **layers)


def _unet_settings(model_config: ml_collections.ConfigDict) -> dict:
  """The U-Net's fields from ``config.model``, checked."""
  widths = tuple(model_config.widths)
  if (len(widths) < 2 or not all(isinstance(w, int) for w in widths)
      or min(widths) < 1):
    raise ConfigError(f'model.widths={widths} needs at least two positive '
                      'entries (one level plus the bottleneck)')
  if 32 % 2 ** (len(widths) - 1):
    raise ConfigError(f'model.widths has {len(widths)} levels; 32x32 images '
                      'allow at most 6')
  if model_config.digit_channels not in (1, 3):
    raise ConfigError(f'model.digit_channels={model_config.digit_channels} '
                      'must be 1 (grey, repeated) or 3')
  if model_config.head not in HEADS:
    raise ConfigError(f'model.head={model_config.head!r} is unknown; use one '
                      f'of {HEADS}')
  resized_from = model_config.digit_resized_from
  if (isinstance(resized_from, bool) or not isinstance(resized_from, int)
      or not 0 <= resized_from < 32):
    raise ConfigError(f'model.digit_resized_from={resized_from!r} must be '
                      'the size the digits were upsampled from (28 for '
                      'MNIST), or 0 if not known')
  if model_config.activation not in ACTIVATIONS:
    raise ConfigError(f'model.activation={model_config.activation!r} is '
                      f'unknown; use one of {tuple(ACTIVATIONS)}')
  if model_config.decoders not in DECODERS:
    raise ConfigError(f'model.decoders={model_config.decoders!r} is unknown; '
                      f'use one of {DECODERS}')
  return dict(widths=widths, digit_channels=model_config.digit_channels,
              head=model_config.head, digit_resized_from=resized_from,
              activation=model_config.activation,
              decoders=model_config.decoders)


__all__ = ['MODELS', 'DTYPES', 'HEADS', 'create_model', 'is_edge_layer',
           'UNet', 'Seed004',
           'MixtureAE', 'DigitAE']
