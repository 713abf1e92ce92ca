"""Evaluation on the fixed eval pairs: per-image metrics, summaries, outputs.

`evaluate_checkpoint` is ``launch.py --mode=eval``; the trainer's final eval
calls the same functions, so both give the same figures for a checkpoint.
"""

import functools
import os
from typing import Any, Mapping

from absl import logging
from etils import epath
import jax
import ml_collections
import numpy as np

from mixae_jax import breakdown
from mixae_jax import config_io
from mixae_jax import distributed
from mixae_jax import inference
from mixae_jax import metrics
from mixae_jax import models
from mixae_jax import paths
from mixae_jax import sharding
from mixae_jax import tuning
from mixae_jax import writers
from mixae_jax.data import pipeline
from mixae_jax.data import preprocessing
from mixae_jax.data import sources
from mixae_jax.inference import separate
from mixae_jax.sharding import put as put_on_mesh

NUM_SAMPLE_ROWS = 10


def separate_pairs(state: Any, first: jax.Array, second: jax.Array,
                   pair: sources.Pair = sources.DEFAULT
                   ) -> tuple[preprocessing.Mixtures, jax.Array, jax.Array]:
  """`inference.mix_separate_align` with the model of `state`."""
  return inference.mix_separate_align(functools.partial(separate, state),
                                      first, second, pair)


@functools.partial(jax.jit, static_argnames='pair')
def eval_step(state: Any, first: jax.Array, second: jax.Array,
              pair: sources.Pair = sources.DEFAULT
              ) -> dict[str, dict[str, jax.Array]]:
  """Per-image metrics of the model and of the mixture-as-answer baseline.

  Args:
    state: see `inference.separate`.
    first: uint8 images of the first source, e.g. [N, 28, 28] MNIST digits.
    second: uint8 images of the second, e.g. [N, 32, 32, 3] CIFAR-10 images.
    pair: the run's sources.

  Returns:
    ``{label: {'psnr','ssim','mse'}, ..., 'baseline_<label>': {...}}`` for
    both of ``pair.labels`` (``mnist`` and ``cifar10`` by default), each a
    float32 [N] array.
  """
  mix, estimate_1, estimate_2 = separate_pairs(state, first, second, pair)
  label_1, label_2 = pair.labels
  return {
      label_1: metrics.per_image(estimate_1, mix.first),
      label_2: metrics.per_image(estimate_2, mix.second),
      f'baseline_{label_1}': metrics.per_image(mix.mixture, mix.first),
      f'baseline_{label_2}': metrics.per_image(mix.mixture, mix.second),
  }


def per_image_metrics(state: Any, eval_set: pipeline.EvalSet,
                      batch_size: int, num_pairs: int | None = None,
                      sharding: jax.sharding.Sharding | None = None
                      ) -> dict[str, dict[str, np.ndarray]]:
  """`eval_step` over the first `num_pairs` eval pairs, in fixed-size batches.

  The last batch is padded to `batch_size` (so one compiled step serves every
  batch) and the padding is dropped from the results.
  """
  n = len(eval_set.first) if num_pairs is None else num_pairs
  chunks = []
  for start in range(0, n, batch_size):
    stop = min(start + batch_size, n)
    first, second = (_pad(a[start:stop], batch_size)
                     for a in (eval_set.first, eval_set.second))
    if sharding is not None:
      first, second = put_on_mesh((first, second), sharding)
    result = eval_step(state, first, second, eval_set.pair)
    chunks.append((result, stop - start))
  # One transfer at the end: the steps above ran without waiting on the host.
  # With several processes, each holds its devices' shards: gather them all.
  chunks = distributed.to_host(chunks)
  result = jax.tree.map(lambda *xs: np.concatenate(xs),
                        *[jax.tree.map(lambda x, k=k: x[:k], r)
                          for r, k in chunks])
  # In the sources' order (a tree map sorts the keys).
  labels = eval_set.pair.labels
  return {k: result[k] for k in (*labels, *(f'baseline_{l}' for l in labels))}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  if len(x) == size:
    return x
  return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


def summary(per_image: Mapping[str, Mapping[str, np.ndarray]], step: int,
            pairing_seed: int) -> dict[str, Any]:
  """The ``eval/metrics.json`` record for one evaluation: the step, the
  pairs, then each source's means under its label (`sources.Pair.labels`)
  and the baseline's under ``baseline``."""
  means = metrics.summarize(per_image)
  labels = metrics.source_labels(per_image)
  return {
      'step': int(step),
      'num_pairs': int(len(per_image[labels[0]]['psnr'])),
      'pairing_seed': int(pairing_seed),
      **{label: means[label] for label in labels},
      'baseline': {label: means[f'baseline_{label}'] for label in labels},
  }


def predict_samples(state: Any, eval_set: pipeline.EvalSet,
                    indices: np.ndarray) -> dict[str, np.ndarray]:
  """Mixture, truths and predictions of the eval pairs at `indices`, for figures."""
  indices = np.asarray(indices)
  mix, estimate_1, estimate_2 = _separate_pairs_jitted(
      state, eval_set.first[indices], eval_set.second[indices], eval_set.pair)
  return distributed.to_host({'mixture': mix.mixture, 'digit': mix.first,
                              'digit_pred': estimate_1, 'image': mix.second,
                              'image_pred': estimate_2})


_separate_pairs_jitted = jax.jit(separate_pairs, static_argnames='pair')


def write_eval_outputs(workdir: str | os.PathLike[str], state: Any,
                       eval_set: pipeline.EvalSet,
                       per_image: Mapping[str, Mapping[str, np.ndarray]],
                       record: Mapping[str, Any],
                       num_samples: int = 10, num_worst: int = 16
                       ) -> tuple[epath.Path, np.ndarray]:
  """Writes everything under ``<workdir>/eval``.

  ``metrics.json`` (the record), ``samples.png`` (the first pairs),
  ``per_class.json`` and ``per_class.png`` (scores per CIFAR class and per
  digit) and ``worst.png`` (the pairs with the lowest mean PSNR).

  Every process computes them (the predictions are collectives); process 0
  alone writes.

  Returns:
    The eval folder and the sample grid (for TensorBoard).
  """
  from mixae_jax import plots  # pylint: disable=g-import-not-at-top

  out = epath.Path(workdir) / 'eval'
  columns = (plots.SAMPLE_COLUMNS if eval_set.pair == sources.DEFAULT
             else plots.sample_columns(*eval_set.pair.labels))
  rows = np.arange(min(num_samples, len(eval_set.first)))
  grid = plots.sample_grid(predict_samples(state, eval_set, rows),
                           columns=columns)
  worst = breakdown.worst_pairs(per_image, num_worst)
  worst_samples = predict_samples(state, eval_set, worst)
  if not distributed.is_primary():
    return out, grid
  out.mkdir(parents=True, exist_ok=True)
  writers.write_json(out / 'metrics.json', record)
  plots.save_png(out / 'samples.png', grid)
  per_class = breakdown.per_class(per_image, eval_set)
  writers.write_json(out / 'per_class.json', per_class)
  if per_class:  # Sources without classes (folders) have no chart.
    plots.per_class_chart(per_class, out / 'per_class.png')
  label_1, label_2 = eval_set.pair.labels
  names = eval_set.pair.roles
  titles = [f'pair {i}: {names[0]} {per_image[label_1]["psnr"][i]:.1f} dB '
            f'(SSIM {per_image[label_1]["ssim"][i]:.2f}), {names[1]} '
            f'{per_image[label_2]["psnr"][i]:.1f} dB '
            f'(SSIM {per_image[label_2]["ssim"][i]:.2f})' for i in worst]
  plots.save_png(out / 'worst.png', plots.sample_grid(
      worst_samples, columns=columns, row_titles=titles))
  return out, grid


def format_summary(record: Mapping[str, Any]) -> str:
  """One human-readable line per source, model against baseline."""
  lines = []
  for source in metrics.source_labels(record):
    m, b = record[source], record['baseline'][source]
    lines.append(f'{source:8s} PSNR {m["psnr"]:6.2f} dB  SSIM {m["ssim"]:.4f}  '
                 f'MSE {m["mse"]:.5f}   (mixture baseline: {b["psnr"]:.2f} dB, '
                 f'SSIM {b["ssim"]:.4f})')
  return '\n'.join(lines)



def periodic_eval(state: Any, step: int, eval_fn: Any,
                   eval_set: pipeline.EvalSet,
                   config: ml_collections.ConfigDict,
                   writer: writers.MetricWriter) -> None:
  """A cheaper eval during training: the first periodic_num_pairs pairs.

  Its scalars go to `writer` with the sample grid; nothing under eval/.
  """
  n = min(config.eval.periodic_num_pairs or config.eval.num_pairs,
          config.eval.num_pairs)
  record = summary(eval_fn(state, num_pairs=n), step,
                            config.eval.pairing_seed)
  writer.write_scalars(step, record, kind='eval')
  samples = predict_samples(
      state, eval_set, np.arange(min(NUM_SAMPLE_ROWS, len(eval_set.first))))
  from mixae_jax import plots  # pylint: disable=g-import-not-at-top
  writer.write_image(step, 'eval/samples', plots.sample_grid(samples))
  logging.info('eval at step %d on %d pairs:\n%s', step, n,
               format_summary(record))


def run_eval(state: Any, step: int, eval_set: pipeline.EvalSet,
             config: ml_collections.ConfigDict, output_dir: epath.Path,
             writer: writers.MetricWriter,
             data_sharding: jax.sharding.Sharding | None = None
             ) -> dict[str, Any]:
  """The full evaluation: eval/ outputs, metrics.jsonl and TensorBoard.

  Returns:
    The record written to ``<output_dir>/eval/metrics.json``.
  """
  per_image = per_image_metrics(state, eval_set, config.eval.batch_size,
                                sharding=data_sharding)
  record = summary(per_image, step, config.eval.pairing_seed)
  out, grid = write_eval_outputs(output_dir, state, eval_set, per_image,
                                 record, NUM_SAMPLE_ROWS)
  writer.write_scalars(step, record, kind='eval')
  writer.write_image(step, 'eval/samples', grid)
  where = out if distributed.is_primary() else f'{out} by process 0'
  logging.info('Final eval at step %d on %d pairs (written to %s):\n%s', step,
               record['num_pairs'], where, format_summary(record))
  return record


def evaluate_checkpoint(config: ml_collections.ConfigDict,
                        workdir: str | os.PathLike[str],
                        output_dir: str | os.PathLike[str] | None = None
                        ) -> dict[str, Any]:
  """``--mode=eval``: restores the latest checkpoint and re-writes eval outputs.

  Gives exactly the metrics of the end-of-training eval for the same config.
  Works on training runs and on released models (`apps.export`).

  Args:
    config: the run's config (its config.json).
    workdir: the run folder.
    output_dir: where the outputs go: ``<output_dir>/eval``, metrics.jsonl
      and TensorBoard events; `workdir` when None.

  Returns:
    The record written to ``<output_dir>/eval/metrics.json``.
  """
  config_io.validate(config)
  workdir = paths.resolve(workdir, '--workdir')
  output_dir = (workdir if output_dir is None
                else paths.resolve(output_dir, '--output_dir'))
  model = models.create_model(config.model, config.dtype,
                              **tuning.layer_forms())
  # Fails before any output exists: no checkpoint, or another model's.
  state, step = inference.restore_state(config, workdir, model=model)
  writers.check_writable(output_dir / 'eval', flag='--output_dir')
  mesh = sharding.make_mesh()
  datasets = pipeline.load_datasets(config.data, with_train=False)
  eval_set = pipeline.make_eval_set(datasets, config.eval.num_pairs,
                                    config.eval.pairing_seed)
  state = put_on_mesh(state, sharding.replicated(mesh))
  with writers.open_writer(output_dir) as writer:
    return run_eval(state, step, eval_set, config, output_dir, writer,
                    sharding.data_sharding(mesh))
