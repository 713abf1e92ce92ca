"""The model card of an exported model: ``README.md`` with a model hub's header.

A model hub lists a folder by its README's YAML header (license, library,
tags, datasets, and a ``model-index`` of scores); the body says what the
model is for, where it fails, how it was trained and how to load it.
"""

import os
from typing import Any

from etils import epath
import ml_collections

from mixae_jax import atomic_files
from mixae_jax.data import sources

CARD_FILE = 'README.md'
# The default pair's sources: (record label, role, test data).
SOURCES = (('mnist', 'digit', 'MNIST test digits (28→32, 3 channels)'),
           ('cifar10', 'image',
            'CIFAR-10 test images (the JPEG re-encoded copy)'))
_TEST_DATA = {'mnist': 'MNIST test digits (28×28, grey)',
              'cifar10': 'CIFAR-10 test images (the JPEG re-encoded copy)'}


def _sources(pair: sources.Pair) -> tuple[tuple[str, str, str, str], ...]:
  """(record label, role, dataset, test data) of each source of `pair`."""
  if pair == sources.DEFAULT:
    return tuple((label, role, label, data) for label, role, data in SOURCES)
  return tuple((label, f'{role} {d.title} image', d.name,
                _TEST_DATA.get(d.name, f'test images of {d.name}'))
               for label, role, d in zip(pair.labels, ('first', 'second'),
                                         (pair.first, pair.second)))


def _yaml_header(name: str, record: dict[str, Any] | None,
                 pair: sources.Pair) -> list[str]:
  lines = ['---', 'license: apache-2.0', 'library_name: mixae_jax', 'tags:',
           '- image-source-separation', '- jax', '- flax', '- u-net',
           'datasets:', *[f'- {d.name}' for d in pair.datasets], 'metrics:',
           '- psnr', '- ssim']
  if record:
    lines += ['model-index:', f'- name: {name}', '  results:']
    for source, role, dataset_name, dataset in _sources(pair):
      lines += ['  - task:', '      type: image-source-separation',
                f'      name: Image source separation ({role} of the mean)',
                '    dataset:', f'      type: {dataset_name}',
                f'      name: {dataset}', '      split: test',
                '    metrics:']
      for metric, what in (('psnr', 'PSNR (dB, data range 1)'),
                           ('ssim', 'SSIM')):
        lines += [f'    - type: {metric}',
                  f'      value: {record[source][metric]:.4f}',
                  f'      name: {role.capitalize()} {what}']
  return lines + ['---']


def card(name: str, config: ml_collections.ConfigDict, step: int,
         record: dict[str, Any] | None, measured_on: str) -> str:
  """The card's text.

  Args:
    name: the model's name (its folder's).
    config: the run's config.
    step: the training step of the weights.
    record: the eval's record (`evaluate.run_eval`), or None if none was made.
    measured_on: which weights the record was measured on, in words.
  """
  model = config.model
  pair = sources.Pair.from_config(config.data)
  if record:
    rows = '\n'.join(
        f'| {role} | {record[source]["psnr"]:.2f} dB | '
        f'{record[source]["ssim"]:.4f} | {record["baseline"][source]["psnr"]:.2f}'
        ' dB |' for source, role, *_ in _sources(pair))
    scores = (f'On {record["num_pairs"]:,} fixed test pairs (pairing seed '
              f'{record["pairing_seed"]}), {measured_on}:\n\n'
              '| source | PSNR | SSIM | mixture as the answer |\n'
              f'|---|---|---|---|\n{rows}')
  else:
    scores = ('Not evaluated: `python launch.py --mode=eval '
              f'--workdir={name} --output_dir=OUT` scores it.')
  size, _, channels = pair.layout.shape
  if pair == sources.DEFAULT:
    task = ('the pixel-wise mean of an MNIST digit (resized\n28→32, repeated '
            'to 3 channels) and a CIFAR-10 image, in [0, 1], it returns\nboth')
    scope = ('the mean of one MNIST-like digit and\n  one 32×32 natural image. '
             'Other mixing weights, other sources or other\n  sizes')
    outputs = 'digits, images'
  else:
    kind = 'grey' if channels == 1 else 'RGB'
    first, second = pair.first.title, pair.second.title
    images = (f'two {first} images' if pair.permutation_invariant
              else f'a {first} and a {second} image')
    task = (f'the pixel-wise mean of {images} ({size}×{size}\n{kind}, in '
            '[0, 1]), it returns both'
            + (' (in either order: a pair of one\ndataset has no first '
               'source, and its scores take the better order)'
               if pair.permutation_invariant else ''))
    scope = (f'the mean of {images} at {size}×{size}.\n  Other mixing '
             'weights, other sources or other sizes')
    outputs = 'firsts, seconds'
  cifar_note = ('- CIFAR-10 here is a JPEG re-encoded copy: its figures '
                'compare with other\n  figures measured on that copy, not '
                'with official CIFAR-10 numbers.\n'
                if 'cifar10' in pair.names else '')
  body = f"""
# {name}

A mixae_jax separator: given {task}. One encoder and two decoders ({model.name}, widths
{tuple(model.widths)}, head `{model.head}`); the weights are those of step
{step:,} of its (last) training run.

## Intended use

Teaching and research on single-channel image source separation: separate
mixtures of this kind, or start a fine-tuning run from these weights
(`--config.init_from=FOLDER`).

## Limitations

- It separates exactly this mixture: {scope} are outside what it learned.
{cifar_note}
## Training data and recipe

{' and '.join(d.title for d in pair.datasets)} training splits, paired afresh at every step. Batch
{config.batch_size}, {config.optimizer.name} at learning rate
{config.optimizer.learning_rate} ({config.optimizer.schedule}), loss
{config.loss.pixel} with SSIM weight {config.loss.ssim_weight}, seed
{config.seed}. Every setting: `config.json`.

## Evaluation

{scores}

## How to load

With mixae_jax:

```python
from mixae_jax import Separator
separator = Separator.restore('{name}')
{outputs} = separator(mixtures)  # float32 [N, {size}, {size}, {channels}] in [0, 1]
```

Without it: `model.safetensors` holds every parameter and BatchNorm
statistic in float16 under the variable tree's keys joined by dots
(`params.ConvBlock_0.Conv_0.kernel`); its header's metadata holds the step.

```python
from safetensors.numpy import load_file
arrays = load_file('{name}/model.safetensors')
```
"""
  return '\n'.join(_yaml_header(name, record, pair)) + '\n' + body


def write(folder: str | os.PathLike[str], config: ml_collections.ConfigDict,
          step: int, record: dict[str, Any] | None,
          measured_on: str) -> epath.Path:
  """Writes ``<folder>/README.md``."""
  folder = epath.Path(folder)
  with atomic_files.atomic_path(folder / CARD_FILE) as tmp:
    tmp.write_text(card(folder.name, config, step, record, measured_on))
  return folder / CARD_FILE
