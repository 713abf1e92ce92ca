"""``--mode=separate``: separate users' PNG files with a trained model.

Either mixtures (``--input=a.png,b.png``), or a digit and an image
(``--digit=d.png --image=c.png``) that are first mixed with the shared
preprocessing. For each, ``--output_dir`` gets ``<name>_digit.png``,
``<name>_image.png`` and ``<name>_separation.png`` (mixture | digit | image,
plus the truths with PSNR/SSIM when they are known); for a model of other
sources, its sources' labels replace 'digit' and 'image'
(``<name>_mnist_1.png``).
"""

import os
import pathlib
from typing import Sequence

from etils import epath
import numpy as np

from mixae_jax import config_io
from mixae_jax import paths
from mixae_jax import plots
from mixae_jax import writers
from mixae_jax.apps import image_io
from mixae_jax.data import sources
from mixae_jax.errors import InputError
from mixae_jax.inference import Separation, Separator


def separate_files(workdir: str | os.PathLike[str],
                   output_dir: str | os.PathLike[str],
                   inputs: Sequence[str] = (), digit: str | None = None,
                   image: str | None = None,
                   resize: bool = False) -> list[epath.Path]:
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
  out = paths.resolve(output_dir, '--output_dir')
  if bool(digit) != bool(image):
    raise InputError('--digit and --image go together: give both (to mix and '
                     'separate them) or neither (and --input=mixture.png)')
  if not inputs and not digit:
    raise InputError('nothing to separate: give --input=a.png[,b.png] '
                     '(32x32 RGB mixtures) or --digit=d.png --image=c.png')
  if inputs and digit:
    raise InputError('give either --input or --digit/--image, not both')
  names = [pathlib.Path(path).stem for path in inputs]
  if len(set(names)) != len(names):
    raise InputError(f'two inputs share a file name ({names}); their outputs '
                     'would overwrite each other')
  # The model's sources say what its files must be; then every file is read
  # (and so validated) before the weights are.
  pair = sources.Pair.from_config(config_io.load(workdir).data)
  layout = pair.layout
  mixtures = [(name, image_io.read_image(path, 'mixture', resize, pair)
               .reshape(layout.shape).astype(np.float32) / 255)
              for name, path in zip(names, inputs)]
  if digit:
    pictures = (image_io.read_image(digit, 'digit', resize, pair),
                image_io.read_image(image, 'image', resize, pair))

  separator = Separator.restore(workdir)
  writers.check_writable(output_dir, flag='--output_dir')
  if digit:
    results = [(f'{pathlib.Path(digit).stem}_{pathlib.Path(image).stem}',
                separator.mix_and_separate(pictures[0][None],
                                           pictures[1][None]))]
  else:
    digits, images = separator(np.stack([x for _, x in mixtures]))
    results = [(name, Separation(x[None], digits[i:i + 1], images[i:i + 1]))
               for i, (name, x) in enumerate(mixtures)]
  roles = separator.pair.roles  # In file names and titles.
  written = []
  for name, result in results:
    for role, picture in zip(roles, (result.digit[0], result.image[0])):
      image_io.write_png(out / f'{name}_{role}.png', picture)
      written.append(out / f'{name}_{role}.png')
    figure = out / f'{name}_separation.png'
    _figure(figure, name, result, roles)
    written.append(figure)
  return written


def _figure(path: epath.Path, name: str, result: Separation,
            roles: tuple[str, str]) -> None:
  """mixture | recovered first | recovered second (| the two truths)."""
  panels = [(f'mixture\n{name}', result.mixture[0]),
            (f'recovered {roles[0]}', result.digit[0]),
            (f'recovered {roles[1]}', result.image[0])]
  if result.scores is not None:
    for i, (key, role) in enumerate(zip(('digit', 'image'), roles), start=1):
      m = result.scores[key]
      panels[i] = (f'recovered {role}\n{float(m["psnr"][0]):.2f} dB, SSIM '
                   f'{float(m["ssim"][0]):.3f}', panels[i][1])
    panels += [(f'true {roles[0]}', result.true_digit[0]),
               (f'true {roles[1]}', result.true_image[0])]
  fig, axes = plots.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.7))
  for ax, (title, picture) in zip(axes, panels):
    picture = np.clip(picture, 0, 1)
    if picture.shape[-1] == 1:  # Grey sources.
      picture = np.repeat(picture, 3, axis=-1)
    ax.imshow(picture, interpolation='nearest')
    ax.set_title(title, fontsize=9)
    ax.axis('off')
  plots.save_figure(fig, path)
