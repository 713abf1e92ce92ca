"""``--mode=separate``: separate users' PNG files with a trained model.

Either mixtures (``--input=a.png,b.png``), or a digit and an image
(``--digit=d.png --image=c.png``) that are first mixed with the shared
preprocessing. For each, ``--output_dir`` gets ``<name>_digit.png``,
``<name>_image.png`` and ``<name>_separation.png`` (mixture | digit | image,
plus the truths with PSNR/SSIM when they are known).
"""

import pathlib
from typing import Sequence

import numpy as np

from mixae_jax import image_io
from mixae_jax import metrics
from mixae_jax import plots
from mixae_jax import writers
from mixae_jax.data import preprocessing
from mixae_jax.errors import InputError
from mixae_jax.inference import Separator


def separate_files(workdir: str | pathlib.Path, output_dir: str | pathlib.Path,
                   inputs: Sequence[str] = (), digit: str | None = None,
                   image: str | None = None,
                   resize: bool = False) -> list[pathlib.Path]:
  """Separates image files and writes the results; returns the files written.

  Args:
    workdir: a run folder or a released model (e.g. ``pretrained/dual``).
    output_dir: where the PNGs go (created).
    inputs: mixture files, 32x32 RGB.
    digit: with `image`, a digit file (28x28 or 32x32, grey or RGB).
    image: with `digit`, a 32x32 RGB image file.
    resize: resize inputs of another size instead of refusing them.

  Raises:
    InputError: bad files, or neither / both kinds of input given.
  """
  if bool(digit) != bool(image):
    raise InputError('--digit and --image go together: give both (to mix and '
                     'separate them) or neither (and --input=mixture.png)')
  if not inputs and not digit:
    raise InputError('nothing to separate: give --input=a.png[,b.png] '
                     '(32x32 RGB mixtures) or --digit=d.png --image=c.png')
  if inputs and digit:
    raise InputError('give either --input or --digit/--image, not both')
  # Read (and so validate) every file before loading the model.
  jobs = []
  if digit:
    d = image_io.read_image(digit, 'digit', resize)
    c = image_io.read_image(image, 'image', resize)
    mix = preprocessing.make_mixtures(d[None], c[None])
    name = f'{pathlib.Path(digit).stem}_{pathlib.Path(image).stem}'
    jobs.append((name, np.asarray(mix.mixture[0]), np.asarray(mix.digit[0]),
                 np.asarray(mix.cifar[0])))
  for path in inputs:
    x = image_io.read_image(path, 'mixture', resize).astype(np.float32) / 255
    jobs.append((pathlib.Path(path).stem, x, None, None))
  names = [j[0] for j in jobs]
  if len(set(names)) != len(names):
    raise InputError(f'two inputs share a file name ({names}); their outputs '
                     'would overwrite each other')

  separator = Separator.restore(workdir)
  writers.check_writable(output_dir, flag='--output_dir')
  if digit:  # Its size is known: a 32x32 digit was never upsampled.
    separator = separator.for_digit_size(d.shape[0])
  digits, images = separator(np.stack([j[1] for j in jobs]))
  out = pathlib.Path(output_dir)
  written = []
  for (name, mixture, true_digit, true_image), d, c in zip(jobs, digits, images):
    for suffix, picture in (('digit', d), ('image', c)):
      image_io.write_png(out / f'{name}_{suffix}.png', picture)
      written.append(out / f'{name}_{suffix}.png')
    figure = out / f'{name}_separation.png'
    _figure(figure, name, mixture, d, c, true_digit, true_image)
    written.append(figure)
  return written


def _figure(path: pathlib.Path, name: str, mixture: np.ndarray,
            digit: np.ndarray, image: np.ndarray,
            true_digit: np.ndarray | None,
            true_image: np.ndarray | None) -> None:
  """mixture | recovered digit | recovered image (| true digit | true image)."""
  plt = plots.pyplot()
  panels = [(f'mixture\n{name}', mixture), ('recovered digit', digit),
            ('recovered image', image)]
  if true_digit is not None:
    for label, pred, truth in (('digit', digit, true_digit),
                               ('image', image, true_image)):
      m = metrics.per_image(pred[None], truth[None])
      i = [p[0] for p in panels].index(f'recovered {label}')
      panels[i] = (f'recovered {label}\n{float(m["psnr"][0]):.2f} dB, SSIM '
                   f'{float(m["ssim"][0]):.3f}', pred)
    panels += [('true digit', true_digit), ('true image', true_image)]
  fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.7))
  for ax, (title, picture) in zip(axes, panels):
    ax.imshow(np.clip(picture, 0, 1), interpolation='nearest')
    ax.set_title(title, fontsize=9)
    ax.axis('off')
  plots.save_figure(fig, path)
