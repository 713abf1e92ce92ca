"""What the consistent head's projections add to a trained separator.

  python benchmarks/head_projections.py                  # pretrained/dual, ~1 min
  python benchmarks/head_projections.py --workdir=runs/dual --num_pairs=10000

(A released model's data folder is this machine's: MIXAE_DATA_DIR, as for
``launch.py --mode=eval``.)

The consistent head averages the decoders' two estimates of the grey digit
and takes the image as ``2 * mixture - digit``; then it projects the digit
onto sets the true digit is known to lie in (`models.project_digit`). This
scores the same decoder outputs, on the first ``--num_pairs`` fixed eval
pairs, under each form of that last step:

  * clip to [0, 1] only (the head before `models.feasible_digit`);
  * the feasible clip: the digit values that keep both sources in [0, 1];
  * the previous head: the orthogonal projection onto the range of the
    28 -> 32 upsampling alternated with the feasible clip, 3 rounds;
  * the head now (``model.digit_resized_from=28``): the projection onto the
    digits upsampled from a 28 x 28 image in [0, 1] that are also feasible,
    solved in 10 to 300 steps (`models.PROJECTION_STEPS`).

It also counts the images whose digit ended further from the truth than
under the first form (the theory says none, for the sum of squares).
``--digit_resize=nearest`` (or ``cubic``) scores mixtures whose digits were
upsampled otherwise, which the projection's assumption does not fit. Prints
one table row per form; the last line is one JSON object.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import eval_pairs  # pylint: disable=wrong-import-position
from mixae_jax import metrics  # pylint: disable=wrong-import-position
from mixae_jax import models  # pylint: disable=wrong-import-position
from mixae_jax import preprocessing  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'pretrained/dual',
                    'A run folder or released model with the consistent grey head.')
flags.DEFINE_integer('num_pairs', 2000, 'First fixed eval pairs to score.')
flags.DEFINE_integer('batch_size', 250, 'Pairs per step.')
flags.DEFINE_enum('digit_resize', 'bilinear', ['bilinear', 'nearest', 'cubic'],
                  'How the 28x28 digits become 32x32: bilinear is the task '
                  '(preprocessing); the others make digits outside the range '
                  'the upsampling projection assumes, to see what it costs '
                  'on mixtures not made the task\'s way.')

STEPS = (10, 30, 100, 300)


def range_rounds(mixture, digit, rounds=3):
  """The previous head: Q X Q (Q = A A^+) alternated with the feasible clip."""
  a, a_pinv, _ = models.upsampling_matrix(28, 32)
  q = jnp.asarray(a.astype(np.float64) @ a_pinv.astype(np.float64), jnp.float32)
  digit = models.feasible_digit(mixture, digit)
  for _ in range(rounds):
    digit = models.feasible_digit(mixture, jnp.einsum(
        'ij,njkc,lk->nilc', q, digit, q, precision=jax.lax.Precision.HIGHEST))
  return digit


def clip_only(mixture, digit):
  """The grey digit clipped to [0, 1], as the head did before the feasible clip."""
  del mixture
  return jnp.clip(digit, 0.0, 1.0)


FORMS = {'clip to [0, 1] only': clip_only,
         'feasible clip': lambda m, d: models.project_digit(m, d, 0),
         'range of the upsampling and clip, 3 rounds': range_rounds} | {
             f'upsampled from 28x28 in [0, 1] and feasible, {k} steps':
             (lambda m, d, k=k: models.project_digit(m, d, 28, steps=k))
             for k in STEPS}


def main(argv):
  del argv
  separator, eval_set = eval_pairs.load(FLAGS.workdir, FLAGS.num_pairs)
  state, config = separator.state, separator.config
  if not (config.model.name == 'unet' and config.model.head == 'consistent'
          and config.model.digit_channels == 1):
    raise app.UsageError(f'{FLAGS.workdir} is no U-Net with the consistent '
                         'grey head (model.head=consistent, digit_channels=1)')
  # The same parameters with the twin head: the decoders' raw outputs.
  raw_config = ml_collections.ConfigDict(config.model.to_dict())
  raw_config.head = 'twin'
  raw_model = models.create_model(raw_config)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}

  @jax.jit
  def scores(digits, images):
    mix = preprocessing.make_mixtures(digits, images)
    if FLAGS.digit_resize != 'bilinear':
      digit = jnp.clip(jax.image.resize(
          digits.astype(jnp.float32) / 255.0, (digits.shape[0], 32, 32),
          FLAGS.digit_resize), 0.0, 1.0)
      digit = jnp.repeat(digit[..., None], 3, axis=-1)
      mix = preprocessing.Mixtures(mixture=(digit + mix.cifar) / 2.0,
                                   digit=digit, cifar=mix.cifar)
    digit, image = raw_model.apply(variables, mix.mixture, train=False)
    # The consistent grey head's least-squares digit, before any clip.
    grey = 0.5 * (digit[..., :1] + jnp.mean(2.0 * mix.mixture - image, -1,
                                             keepdims=True))
    out = {}
    for name, form in FORMS.items():
      d = jnp.broadcast_to(form(mix.mixture, grey), mix.mixture.shape)
      out[name] = {'mnist': metrics.per_image(d, mix.digit),
                   'cifar10': metrics.per_image(
                       jnp.clip(2.0 * mix.mixture - d, 0.0, 1.0), mix.cifar)}
    return out

  per_image, seconds = eval_pairs.score(scores, eval_set, FLAGS.num_pairs,
                                        FLAGS.batch_size)
  print(f'{FLAGS.workdir}, first {FLAGS.num_pairs} eval pairs, digits '
        f'resized {FLAGS.digit_resize} ({seconds:.0f} s)')
  print('| last step of the head | digit PSNR | digit SSIM | CIFAR PSNR | '
        'CIFAR SSIM | images with a larger digit error |')
  print('|---|---|---|---|---|---|')
  before = per_image['clip to [0, 1] only']['mnist']['mse']
  result = {}
  for name in FORMS:  # Not the pytree's order.
    result[name] = metrics.summarize(per_image[name])
    worse = int(np.sum(per_image[name]['mnist']['mse'] > before * (1 + 1e-5)))
    result[name]['worse_images'] = worse
    d, c = result[name]['mnist'], result[name]['cifar10']
    print(f'| {name} | {d["psnr"]:.3f} dB | {d["ssim"]:.5f} | '
          f'{c["psnr"]:.3f} dB | {c["ssim"]:.5f} | {worse} |')
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
