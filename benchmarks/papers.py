"""Separation of two images of one kind, on the published separators' protocols.

  python -m benchmarks.quality --set=papers      # a few seconds

The protocols, as the authors' code builds and scores them (docs/papers.md):

  * MNIST+MNIST (LASS, and BASIS's score): the 10,000 test digits at 28x28
    in [0, 1]; pair i is test digit i with test digit ``perm[i]``, where
    ``perm = numpy.random.default_rng(100).permutation(10000)``; the mixture
    is their mean. Per pair, the PSNR (data range 1) of each source, averaged
    under the better of the two assignments (`metrics.best_ordering`); the
    table gives the mean over pairs, and its standard deviation.
  * CIFAR-10+CIFAR-10: the same pairing and score on the 10,000 CIFAR-10
    test images (32x32 RGB). Our copy is JPEG re-encoded
    (../shared/data/README.md): compare with care.

Rows: the published figures as reported (not re-run here), the mixture
itself as the answer, measured here, and mixae_jax's model for each pair
(`MODELS`: the released ones, or any run folder given with
``--paper_models=mnist+mnist=runs/mnist_mnist``), scored here on the same
pairs through the evaluation every run uses (`evaluate.per_image_metrics`,
which aligns a pair of one dataset by `metrics.best_ordering`).
"""

import pathlib

from typing import Any

import numpy as np

from configs import dual
from mixae_jax import Separator
from mixae_jax import evaluate
from mixae_jax import metrics
from mixae_jax.data import pipeline

PAIRING_SEED = 100  # LASS's PairsDataset seed.

# (protocol, separator, PSNR dB, how it was trained, where the figure is from)
PUBLISHED = [
    ('mnist+mnist', 'LASS (Postolache et al., AAAI 2023)', 24.23,
     'unsupervised (generative priors)', 'paper, ± 6.23'),
    ('mnist+mnist', 'flow-matching separator ("SURF", 2026)', 37.26,
     'unsupervised', 'secondary summary, unverified'),
    ('mnist+mnist', 'flow-matching separator ("SURF", 2026)', 37.44,
     'supervised', 'secondary summary, unverified'),
    ('cifar10+cifar10', 'flow-matching separator ("SURF", 2026)', 19.73,
     'unsupervised', 'secondary summary, unverified'),
    ('cifar10+cifar10', 'flow-matching separator ("SURF", 2026)', 20.38,
     'supervised', 'secondary summary, unverified'),
]
GOALS = {'mnist+mnist': 38.0, 'cifar10+cifar10': 21.0}
# mixae_jax's model of each protocol's pair, when it exists.
MODELS = {'mnist+mnist': 'pretrained/mnist_mnist',
          'cifar10+cifar10': 'pretrained/cifar_cifar'}


def permutation_pairs(n: int, seed: int = PAIRING_SEED
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Pair i is item i with item ``default_rng(seed).permutation(n)[i]``:
  the eval's pairing of one dataset with itself (`pipeline.pairing`)."""
  return pipeline.pairing(n, seed, n, n, one_dataset=True)


def to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W] or [N, H, W, C] as float32 [N, H, W, C] in [0, 1]."""
  images = images.astype(np.float32) / 255.0
  return images[..., None] if images.ndim == 3 else images


def mixture_as_answer(images: np.ndarray) -> dict[str, float]:
  """The protocol's score of answering both sources with the mixture."""
  first, second = permutation_pairs(len(images))
  x, y = to_float(images[first]), to_float(images[second])
  mixture = 0.5 * (x + y)
  scores, _ = metrics.best_ordering((mixture, mixture), (x, y))
  scores = np.asarray(scores)
  # Identical pairs (i == perm[i]) have an infinite PSNR: left out.
  finite = np.isfinite(scores)
  return {'psnr': float(np.mean(scores[finite])),
          'std': float(np.std(scores[finite])),
          'pairs': int(finite.sum()), 'identical': int((~finite).sum())}


def model_score(folder: str | pathlib.Path,
                num_pairs: int = 10_000) -> dict[str, Any]:
  """The protocol's score of the model in `folder` (a run or a release).

  Its pairs are the protocol's when its config pairs one dataset with
  itself at seed `PAIRING_SEED` (configs/mnist_mnist.py, cifar_cifar.py).
  """
  batch_size = min(500, num_pairs)
  separator = Separator.restore(folder, batch_size=batch_size)
  config = separator.config
  if not separator.pair.permutation_invariant or (
      config.eval.pairing_seed != PAIRING_SEED):
    raise ValueError(f'{folder} does not separate one dataset twice on seed '
                     f'{PAIRING_SEED}\'s pairs (data.sources='
                     f'{tuple(config.data.sources)}, eval.pairing_seed='
                     f'{config.eval.pairing_seed})')
  datasets = pipeline.load_datasets(config.data, with_train=False)
  eval_set = pipeline.make_eval_set(datasets, num_pairs, PAIRING_SEED)
  per_image = evaluate.per_image_metrics(separator.state, eval_set, batch_size)
  label_1, label_2 = separator.pair.labels
  scores = 0.5 * (per_image[label_1]['psnr'] + per_image[label_2]['psnr'])
  return {'psnr': float(np.mean(scores)), 'std': float(np.std(scores)),
          'pairs': len(scores), 'steps': int(separator.step),
          'batch_size': int(config.batch_size), 'folder': str(folder)}


def measure(models: dict[str, str] | None = None
            ) -> dict[str, dict[str, Any]]:
  """The measured rows, per protocol: the mixture as the answer, and each
  model of `models` (protocol -> folder; `MODELS` where they exist)."""
  datasets = pipeline.load_datasets(dual.get_config().data, with_train=False)
  measured = {
      'mnist+mnist': {'mixture': mixture_as_answer(datasets.first_test.images)},
      'cifar10+cifar10': {
          'mixture': mixture_as_answer(datasets.second_test.images)}}
  if models is None:
    models = {k: v for k, v in MODELS.items() if pathlib.Path(v).is_dir()}
  for protocol, folder in models.items():
    measured[protocol]['mixae_jax'] = model_score(folder)
  return measured


def table(measured: dict[str, dict[str, Any]]) -> str:
  lines = ['| protocol | separator | PSNR | trained | figure |',
           '|---|---|---|---|---|']
  for protocol in GOALS:
    for name, psnr, trained, source in [
        row[1:] for row in PUBLISHED if row[0] == protocol]:
      lines.append(f'| {protocol} | {name} | {psnr:.2f} dB | {trained} | '
                   f'{source} |')
    m = measured[protocol]['mixture']
    lines.append(f'| {protocol} | mixture as the answer | {m["psnr"]:.2f} dB '
                 f'(± {m["std"]:.2f}) | - | measured here, {m["pairs"]:,} '
                 f'pairs ({m["identical"]} identical left out) |')
    if 'mixae_jax' in measured[protocol]:
      m = measured[protocol]['mixae_jax']
      lines.append(
          f'| {protocol} | mixae_jax ({m["folder"]}) | {m["psnr"]:.2f} dB '
          f'(± {m["std"]:.2f}) | supervised, {m["steps"]:,} steps of '
          f'{m["batch_size"]} | measured here, {m["pairs"]:,} pairs |')
    lines.append(f'| {protocol} | mixae_jax goal | {GOALS[protocol]:.2f} dB | '
                 'supervised | issue 51 |')
  return '\n'.join(lines)


def run(models: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
  """Measures and prints the table; returns the measured rows."""
  measured = measure(models)
  print(table(measured))
  return measured

