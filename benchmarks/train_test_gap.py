"""A trained separator's scores on training pairs against test pairs.

  python benchmarks/train_test_gap.py                    # pretrained/dual, ~1 min
  python benchmarks/train_test_gap.py --workdir=runs/dual --num_pairs=10000

(A released model's data folder is this machine's: MIXAE_DATA_DIR, as for
``launch.py --mode=eval``.)

Scores ``--num_pairs`` pairs drawn from the training splits and as many from
the test splits, each pairing made as the eval's (`input_pipeline.pairing`,
seed ``eval.pairing_seed``; for the test splits these are the first fixed
eval pairs). Training draws fresh random pairs at every step, so no training
mixture is ever seen twice, but every digit and every image is: a model that
scores clearly higher on training pairs has begun to memorise its sources
(more data variety, e.g. augmentation, would then pay); one that scores the
same is limited by its capacity or its training steps. Prints one table row
per split and the gap; the last line is one JSON object.
"""

import json
import os
import sys

from absl import app
from absl import flags
import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import eval_pairs  # pylint: disable=wrong-import-position
from mixae_jax import evaluate  # pylint: disable=wrong-import-position
from mixae_jax import input_pipeline  # pylint: disable=wrong-import-position
from mixae_jax import metrics  # pylint: disable=wrong-import-position
from mixae_jax import preprocessing  # pylint: disable=wrong-import-position
from mixae_jax.separator import Separator  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'pretrained/dual', 'A run folder or released model.')
flags.DEFINE_integer('num_pairs', 5000, 'Pairs to score from each split.')
flags.DEFINE_integer('batch_size', 500, 'Pairs per step.')


def split_pairs(digits: input_pipeline.Split, images: input_pipeline.Split,
                num_pairs: int, pairing_seed: int) -> input_pipeline.EvalSet:
  """`num_pairs` pairs of these splits, paired as the eval pairs its test splits."""
  digit_index, image_index = input_pipeline.pairing(
      num_pairs, pairing_seed, len(digits.images), len(images.images),
      what='--num_pairs')
  return input_pipeline.EvalSet(
      digits=digits.images[digit_index], images=images.images[image_index],
      digit_labels=digits.labels[digit_index],
      image_labels=images.labels[image_index],
      digit_index=digit_index, image_index=image_index)


def main(argv):
  del argv
  separator = Separator.restore(FLAGS.workdir)
  config = separator.config
  datasets = input_pipeline.load_datasets(config.data, with_train=True)
  state = separator.state

  @jax.jit
  def scores(digits, images):
    mix = preprocessing.make_mixtures(digits, images)
    digit, image = evaluate.separate(state, mix.mixture)
    return {'mnist': metrics.per_image(digit, mix.digit),
            'cifar10': metrics.per_image(image, mix.cifar)}

  splits = {
      'train': (datasets.mnist_train, datasets.cifar_train),
      'test': (datasets.mnist_test, datasets.cifar_test),
  }
  result = {}
  print(f'{FLAGS.workdir}, {FLAGS.num_pairs} pairs from each split')
  print('| pairs from | digit PSNR | digit SSIM | CIFAR PSNR | CIFAR SSIM |')
  print('|---|---|---|---|---|')
  for name, (digits, images) in splits.items():
    pairs = split_pairs(digits, images, FLAGS.num_pairs,
                        config.eval.pairing_seed)
    per_image, _ = eval_pairs.score(scores, pairs, FLAGS.num_pairs,
                                    FLAGS.batch_size)
    result[name] = metrics.summarize(per_image)
    d, c = result[name]['mnist'], result[name]['cifar10']
    print(f'| {name} splits | {d["psnr"]:.2f} dB | {d["ssim"]:.4f} | '
          f'{c["psnr"]:.2f} dB | {c["ssim"]:.4f} |')
  gap = {source: {metric: result['train'][source][metric]
                  - result['test'][source][metric]
                  for metric in ('psnr', 'ssim')}
         for source in ('mnist', 'cifar10')}
  print(f'train - test: digit {gap["mnist"]["psnr"]:+.3f} dB, SSIM '
        f'{gap["mnist"]["ssim"]:+.4f}; CIFAR {gap["cifar10"]["psnr"]:+.3f} dB,'
        f' SSIM {gap["cifar10"]["ssim"]:+.4f}')
  print(json.dumps({**result, 'train_minus_test': gap}))


if __name__ == '__main__':
  app.run(main)
