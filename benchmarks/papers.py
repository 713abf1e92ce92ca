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

Rows: the published figures as reported (not re-run here), and the mixture
itself as the answer, measured here. mixae_jax's rows join when a model for
the pair is released (`pretrained/mnist_mnist`, `pretrained/cifar_cifar`).
"""

from typing import Any

import numpy as np

from configs import dual
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


def permutation_pairs(n: int, seed: int = PAIRING_SEED
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Pair i is item i with item ``default_rng(seed).permutation(n)[i]``."""
  return np.arange(n), np.random.default_rng(seed).permutation(n)


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


def measure() -> dict[str, dict[str, Any]]:
  """The measured rows, per protocol."""
  datasets = pipeline.load_datasets(dual.get_config().data, with_train=False)
  return {'mnist+mnist': mixture_as_answer(datasets.first_test.images),
          'cifar10+cifar10': mixture_as_answer(datasets.second_test.images)}


def table(measured: dict[str, dict[str, Any]]) -> str:
  lines = ['| protocol | separator | PSNR | trained | figure |',
           '|---|---|---|---|---|']
  for protocol in GOALS:
    for name, psnr, trained, source in [
        row[1:] for row in PUBLISHED if row[0] == protocol]:
      lines.append(f'| {protocol} | {name} | {psnr:.2f} dB | {trained} | '
                   f'{source} |')
    m = measured[protocol]
    lines.append(f'| {protocol} | mixture as the answer | {m["psnr"]:.2f} dB '
                 f'(± {m["std"]:.2f}) | - | measured here, {m["pairs"]:,} '
                 f'pairs ({m["identical"]} identical left out) |')
    lines.append(f'| {protocol} | mixae_jax goal | {GOALS[protocol]:.2f} dB | '
                 'supervised | issue 51 |')
  return '\n'.join(lines)


def run() -> dict[str, dict[str, Any]]:
  """Measures and prints the table; returns the measured rows."""
  measured = measure()
  print(table(measured))
  return measured

