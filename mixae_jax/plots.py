"""Figures a run writes: the sample grid and the loss / PSNR curves."""

import os
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from mixae_jax import atomic_files
from mixae_jax import metrics

def sample_columns(first: str = 'digit', second: str = 'CIFAR'
                   ) -> tuple[tuple[str, str], ...]:
  """The sample grid's (key, title) columns, the sources named as given."""
  return (('mixture', 'mixture'), ('digit', f'true {first}'),
          ('digit_pred', f'recovered {first}'), ('image', f'true {second}'),
          ('image_pred', f'recovered {second}'))


SAMPLE_COLUMNS = sample_columns()


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
  """`matplotlib.pyplot.subplots`, but for a file: a bare `Figure`.

  No pyplot and no backend switch, so that a notebook that trains or
  separates still shows its own figures inline, and no display is needed.
  """
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=kwargs.pop('figsize', None))
  return fig, fig.subplots(*args, **kwargs)


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> None:
  """Saves a matplotlib figure to `path` (creating folders) and closes it."""
  fig.tight_layout()
  with atomic_files.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=dpi)  # A bare Figure: nothing to close.


def to_uint8(x: np.ndarray) -> np.ndarray:
  """float [...] in [0, 1] -> uint8, rounding to the nearest level.

  Every float picture mixae_jax writes or shows goes through here.
  """
  return np.round(np.clip(np.asarray(x, np.float32), 0, 1) * 255).astype(np.uint8)


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
  """Writes a uint8 [H, W, 3] image as a PNG, atomically."""
  with atomic_files.atomic_path(path) as tmp:
    Image.fromarray(image).save(tmp)


def sample_grid(samples: Mapping[str, np.ndarray], scale: int = 3,
                columns: Sequence[tuple[str, str]] = SAMPLE_COLUMNS,
                row_titles: Sequence[str] | None = None) -> np.ndarray:
  """A labelled grid: one row per pair, one column per entry of `columns`.

  Args:
    samples: float [N, H, W, C] arrays in [0, 1] keyed by column key
      (C = 1: grey).
    scale: nearest-neighbour upscaling so 32x32 images stay legible.
    columns: (key, title) pairs in display order.
    row_titles: optional text under each row's first image.

  Returns:
    uint8 [H, W, 3] image.
  """
  rows = len(samples[columns[0][0]])
  cell, gap, header = 32 * scale, 4, 16
  row_h = cell + gap + (12 if row_titles else 0)
  width = len(columns) * (cell + gap) + gap
  canvas = Image.new('RGB', (max(width, 1), header + rows * row_h + gap),
                     'white')
  draw = ImageDraw.Draw(canvas)
  for c, (key, title) in enumerate(columns):
    x = gap + c * (cell + gap)
    draw.text((x, 2), title, fill='black')
    tiles = to_uint8(samples[key])
    if tiles.shape[-1] == 1:
      tiles = np.repeat(tiles, 3, axis=-1)
    for r in range(rows):
      tile = Image.fromarray(tiles[r]).resize((cell, cell), Image.NEAREST)
      y = header + r * row_h
      canvas.paste(tile, (x, y))
      if row_titles and c == 0:
        draw.text((x, y + cell + 1), row_titles[r], fill='black')
  return np.asarray(canvas)


def loss_curves(records: Sequence[Mapping[str, Any]],
                path: str | os.PathLike[str]) -> None:
  """Plots train loss and eval PSNR (both sources) against step to `path`."""
  # A resumed run logs again the steps after its checkpoint: keep the latest
  # record of each (kind, step).
  latest = {(r.get('kind'), r.get('step')): r for r in records}
  records = sorted(latest.values(), key=lambda r: r['step'])
  train = [r for r in records if r.get('kind') == 'train'
           and isinstance(r.get('loss'), (int, float))]
  evals = [r for r in records
           if r.get('kind') == 'eval' and metrics.source_labels(r)]
  fig, (ax_loss, ax_psnr) = subplots(1, 2, figsize=(11, 4))
  if train:
    ax_loss.plot([r['step'] for r in train], [r['loss'] for r in train])
    ax_loss.set_yscale('log')
  ax_loss.set(title='train loss (both sources)', xlabel='step')
  for source in (metrics.source_labels(evals[-1]) if evals else ()):
    ax_psnr.plot([r['step'] for r in evals],
                 [r[source]['psnr'] for r in evals], 'o-',
                 label=_SOURCE_NAMES.get(source, source))
  ax_psnr.set(title='eval PSNR (dB)', xlabel='step')
  if evals:
    ax_psnr.legend()
  for ax in (ax_loss, ax_psnr):
    ax.grid(alpha=0.3)
  save_figure(fig, path)


# How the default pair's sources are named in figures.
_SOURCE_NAMES = {'mnist': 'digit (MNIST)', 'cifar10': 'image (CIFAR-10)'}
_GROUPING_TITLES = {'by_cifar_class': 'per CIFAR-10 class',
                    'by_digit': 'per digit'}


def per_class_chart(per_class: Mapping[str, Any],
                    path: str | os.PathLike[str]) -> None:
  """Bar charts of PSNR and SSIM per class of each source, both sources."""
  fig, axes = subplots(2, 2, figsize=(13, 7), squeeze=False)
  for col, grouping in enumerate(per_class):
    groups = per_class[grouping]
    names = list(groups)
    sources = [k for k in groups[names[0]] if k != 'count'] if names else []
    x = np.arange(len(names))
    for row, metric in enumerate(('psnr', 'ssim')):
      ax = axes[row, col]
      for k, source in enumerate(sources):
        values = [groups[n][source][metric] for n in names]
        ax.bar(x + (k - 0.5) * 0.4, values, width=0.4,
               label=_SOURCE_NAMES.get(source, source))
      ax.set_xticks(x, names, rotation=30 if len(names[0]) > 2 else 0,
                    fontsize=8)
      title = _GROUPING_TITLES.get(grouping, grouping.replace('_', ' '))
      ax.set_title(f'{metric.upper()} {title}')
      values = [groups[n][s][metric] for n in names for s in sources] or [0]
      low, high = min(values), max(values)
      pad = 0.15 * (high - low) + 1e-3
      ax.set_ylim(low - pad, high + pad)  # Differences, not totals, matter.
      ax.grid(axis='y', alpha=0.3)
      ax.legend(fontsize=8)
  save_figure(fig, path)
