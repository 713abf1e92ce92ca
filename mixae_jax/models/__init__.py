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
from mixae_jax.models.layers import ModuleDef, NORMS
from mixae_jax.models.reference import DigitAE, MixtureAE, Seed004
from mixae_jax.models.unet import ACTIVATIONS, DECODERS, UNet, is_edge_layer

MODELS = {'unet': UNet, 'seed004': Seed004, 'mixture_ae': MixtureAE,
          'digit_ae': DigitAE}


# What ``config.dtype`` may name: the U-Net's activations and convolutions.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def create_model(model_config: ml_collections.ConfigDict,
                 dtype: str = 'float32', **layers: ModuleDef) -> nn.Module:
  """Builds the model named by ``model_config.name`` from its settings.

  Args:
    model_config: ``config.model``.
    dtype: ``config.dtype``, a key of `DTYPES`: the U-Net's computation
      (parameters and outputs stay float32); the reference designs take
      float32 only.
    **layers: layer constructors to use instead of flax's (``conv``,
      ``conv_transpose``; see `mixae_jax.platform.layer_forms`);
      a model takes those it has and ignores the rest. They compute the same
      function with the same parameters.

  Raises:
    ConfigError: an unknown model name, norm or head, or nonsensical sizes.
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
  heads_ = model_config.get('attention_heads', 0)
  if (isinstance(heads_, bool) or not isinstance(heads_, int) or heads_ < 0
      or (heads_ and widths[-1] % heads_)):
    raise ConfigError(f'model.attention_heads={heads_!r} must be 0 (none) or '
                      f'a positive divisor of the bottleneck width {widths[-1]}')
  patch = model_config.get('patch_size', 1)
  if patch not in (1, 2, 4) or isinstance(patch, bool):
    raise ConfigError(f'model.patch_size={patch!r} must be 1 (none), 2 or 4')
  if 32 % (patch * 2 ** (len(widths) - 1)):
    raise ConfigError(f'model.patch_size={patch} with {len(widths)} levels '
                      'halves 32x32 images too often; use fewer levels')
  activation = model_config.get('activation', 'relu')
  if activation not in ACTIVATIONS:
    raise ConfigError(f'model.activation={activation!r} is unknown; use one '
                      f'of {tuple(ACTIVATIONS)}')
  decoders = model_config.get('decoders', 'twin')
  if decoders not in DECODERS:
    raise ConfigError(f'model.decoders={decoders!r} is unknown; use one of '
                      f'{DECODERS}')
  return dict(widths=widths, norm=model_config.norm,
              digit_channels=model_config.digit_channels, head=head,
              digit_resized_from=resized_from, attention_heads=heads_,
              patch_size=patch, activation=activation, decoders=decoders)


__all__ = ['MODELS', 'DTYPES', 'HEADS', 'NORMS', 'create_model', 'is_edge_layer',
           'UNet', 'Seed004',
           'MixtureAE', 'DigitAE']
