"""The optimizer and its learning-rate schedule, from ``config.optimizer``."""

import functools
from typing import Any

import jax
import ml_collections
import optax

from mixae_jax import models


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning-rate schedule; decay length derives from num_train_steps."""
  opt = config.optimizer
  return _schedule(config.num_train_steps, opt.schedule, opt.learning_rate,
                   opt.warmup_steps, opt.final_lr_fraction)


def _schedule(num_train_steps: int, kind: str, peak: float, warmup_steps: int,
              final_lr_fraction: float) -> optax.Schedule:
  warmup = min(warmup_steps, num_train_steps)
  if kind == 'constant':
    if not warmup:
      return optax.constant_schedule(peak)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup),
         optax.constant_schedule(peak)], [warmup])
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup,
      decay_steps=max(num_train_steps, warmup + 1),
      end_value=peak * final_lr_fraction)


def make_optimizer(config: ml_collections.ConfigDict
                   ) -> optax.GradientTransformation:
  """Adam (AdamW when weight_decay > 0) or Muon, optionally with clipping.

  ``optimizer.name='muon'`` steps each hidden convolution kernel with Muon
  (its momentum orthogonalised by Newton-Schulz iterations, the kernel read
  as a [kh * kw * in, out] matrix) and everything else with Adam
  (`muon_dimension_numbers`); both follow the one learning-rate schedule.

  Equal settings give the same optimizer object: the train state holds it as
  static data, so runs of equal settings share one compiled train step.
  """
  opt = config.optimizer
  return _optimizer(config.num_train_steps, opt.name, opt.schedule,
                    opt.learning_rate, opt.warmup_steps, opt.final_lr_fraction,
                    opt.weight_decay, opt.grad_clip_norm)


@functools.lru_cache(maxsize=64)
def _optimizer(num_train_steps: int, name: str, schedule: str,
               learning_rate: float, warmup_steps: int,
               final_lr_fraction: float, weight_decay: float,
               grad_clip_norm: float) -> optax.GradientTransformation:
  lr = _schedule(num_train_steps, schedule, learning_rate, warmup_steps,
                 final_lr_fraction)
  if name == 'muon':
    # consistent_rms=0.2 scales Muon's steps to Adam's typical RMS, so one
    # peak learning rate serves both parts (Liu et al. 2025). Weight decay,
    # if any, applies to the orthogonalised kernels only.
    tx = optax.contrib.muon(
        lr, weight_decay=weight_decay, consistent_rms=0.2,
        muon_weight_dimension_numbers=muon_dimension_numbers)
  elif weight_decay:
    # Kernels only: decaying biases and normalisation scales only pulls the
    # network away from its normalised form.
    tx = optax.adamw(lr, weight_decay=weight_decay, mask=_is_kernel)
  else:
    tx = optax.adam(lr)
  if grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx


def muon_dimension_numbers(params: Any) -> Any:
  """Which parameters Muon steps, and how it reads each as a matrix.

  The hidden convolution kernels [kh, kw, in, out], read as
  [kh * kw * in, out] matrices. The layers that touch the image, the
  input convolution and the decoders' output convolutions
  (`models.is_edge_layer`), and every bias, norm and vector are left to
  Adam, as Muon's authors advise. Chosen by the parameter's path, never by
  its shape: a shared decoder's output layer has 4 outputs, an input layer
  3 inputs.
  """
  kernel = optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2),
                                              output_axis=3)
  def spec(path, p):
    names = tuple(str(getattr(k, 'key', k)) for k in path)
    hidden = (p.ndim == 4 and names[-1] == 'kernel'
              and not models.is_edge_layer(names[:-1]))
    return kernel if hidden else None
  return jax.tree_util.tree_map_with_path(spec, params)


def _is_kernel(params: Any) -> Any:
  """True for the weight matrices and kernels (ndim > 1) of a parameter tree."""
  return jax.tree.map(lambda p: p.ndim > 1, params)
