"""Test-time augmentation of a trained separator: flips and rotations, averaged.

  python benchmarks/tta.py                               # pretrained/dual, ~1 min
  python benchmarks/tta.py --workdir=runs/dual --num_pairs=10000

(A released model's data folder is this machine's: MIXAE_DATA_DIR, as for
``launch.py --mode=eval``.)

Separation commutes with flipping or rotating the mixture, so a model can
separate each of the eight flips and rotations of a mixture, undo the
transform on its estimates and average them (a "self-ensemble"). The average
of mixture-consistent estimates is still consistent. This scores, on the
first ``--num_pairs`` fixed eval pairs, each transform alone (how far from
the training distribution it takes the input: no model here trains on
flipped or rotated digits) and the averages over growing sets of them.
Prints one table row per set; the last line is one JSON object.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import eval_pairs  # pylint: disable=wrong-import-position
from mixae_jax import evaluate  # pylint: disable=wrong-import-position
from mixae_jax import metrics  # pylint: disable=wrong-import-position
from mixae_jax import preprocessing  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'pretrained/dual', 'A run folder or released model.')
flags.DEFINE_integer('num_pairs', 2000, 'First fixed eval pairs to score.')
flags.DEFINE_integer('batch_size', 250, 'Pairs per step.')

# Each transform of [N, H, W, C] images and its inverse.
TRANSFORMS = {
    'identity': (lambda x: x, lambda x: x),
    'hflip': (lambda x: x[:, :, ::-1], lambda x: x[:, :, ::-1]),
    'vflip': (lambda x: x[:, ::-1], lambda x: x[:, ::-1]),
    'rot180': (lambda x: x[:, ::-1, ::-1], lambda x: x[:, ::-1, ::-1]),
    'transpose': (lambda x: jnp.swapaxes(x, 1, 2), lambda x: jnp.swapaxes(x, 1, 2)),
    'rot90': (lambda x: jnp.rot90(x, 1, (1, 2)), lambda x: jnp.rot90(x, -1, (1, 2))),
    'rot270': (lambda x: jnp.rot90(x, -1, (1, 2)), lambda x: jnp.rot90(x, 1, (1, 2))),
    'antitranspose': (lambda x: jnp.rot90(jnp.swapaxes(x, 1, 2), 2, (1, 2)),
                      lambda x: jnp.swapaxes(jnp.rot90(x, 2, (1, 2)), 1, 2)),
}
ENSEMBLES = {
    'identity + hflip': ('identity', 'hflip'),
    'identity + hflip + vflip + rot180': ('identity', 'hflip', 'vflip', 'rot180'),
    'all eight': tuple(TRANSFORMS),
}


def main(argv):
  del argv
  separator, eval_set = eval_pairs.load(FLAGS.workdir, FLAGS.num_pairs)
  state = separator.state

  @jax.jit
  def scores(digits, images):
    mix = preprocessing.make_mixtures(digits, images)
    estimates = {}
    for name, (forward, inverse) in TRANSFORMS.items():
      digit, image = evaluate.separate(state, forward(mix.mixture))
      estimates[name] = (inverse(digit), inverse(image))
    sets = {name: (name,) for name in TRANSFORMS} | ENSEMBLES
    out = {}
    for label, names in sets.items():
      digit = sum(estimates[n][0] for n in names) / len(names)
      image = sum(estimates[n][1] for n in names) / len(names)
      out[label] = {'mnist': metrics.per_image(digit, mix.digit),
                    'cifar10': metrics.per_image(image, mix.cifar)}
    return out

  per_image, seconds = eval_pairs.score(scores, eval_set, FLAGS.num_pairs,
                                        FLAGS.batch_size)
  print(f'{FLAGS.workdir}, first {FLAGS.num_pairs} eval pairs ({seconds:.0f} s)')
  print('| inputs separated | digit PSNR | digit SSIM | CIFAR PSNR | CIFAR SSIM |')
  print('|---|---|---|---|---|')
  result = {}
  for label in list(TRANSFORMS) + list(ENSEMBLES):  # Not the pytree's order.
    result[label] = metrics.summarize(per_image[label])
    d, c = result[label]['mnist'], result[label]['cifar10']
    print(f'| {label} | {d["psnr"]:.2f} dB | {d["ssim"]:.4f} | '
          f'{c["psnr"]:.2f} dB | {c["ssim"]:.4f} |')
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
