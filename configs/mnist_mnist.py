"""Two MNIST digits from their mean: the published separators' MNIST task.

  python launch.py --config=configs/mnist_mnist.py --workdir=runs/mnist_mnist
  python launch.py --config=configs/mnist_mnist.py:gpu --workdir=runs/mnist_mnist

Both sources are MNIST, at its own 28x28 in grey (the U-Net pads to 32
inside and crops back). A pair of one dataset has no first digit: the loss
and the scores take each pair in the better of its two orders. The eval is
LASS's protocol (docs/papers.md): the 10,000 test digits, each mixed with
test digit ``default_rng(100).permutation(10000)[i]``;
``python -m benchmarks.quality --set=papers`` sets the run beside the
published figures.

Lengths: ``cpu`` (the default) is sized for 2 CPU cores within about 90
minutes; ``gpu`` for a lent GPU. Measured lengths and
scores: docs/papers.md.
"""

import ml_collections

from configs import quick

LENGTHS = ('cpu', 'gpu')


def get_config(length: str = 'cpu') -> ml_collections.ConfigDict:
  """The MNIST+MNIST configuration; `length` is one of `LENGTHS`."""
  config = quick.get_config()
  config.data.sources = ('mnist', 'mnist')
  # A grey first source at its own size: no upsampling to project onto.
  config.model.digit_channels = 1
  config.model.digit_resized_from = 0
  config.eval.pairing_seed = 100  # LASS's pairing (docs/papers.md).
  if length == 'cpu':
    config.num_train_steps = 12_000
  elif length == 'gpu':
    config.model.widths = (32, 64, 128, 256)
    config.batch_size = 128
    config.num_train_steps = 30_000
    config.optimizer.learning_rate = 8e-3
    config.optimizer.warmup_steps = 500
    config.eval.every_steps = 5000
    config.checkpoint.every_steps = 5000
  else:
    raise ValueError(f'length={length!r}: use one of {LENGTHS}')
  return config
