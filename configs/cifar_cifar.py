"""Two CIFAR-10 images from their mean: the published separators' CIFAR task.

  python launch.py --config=configs/cifar_cifar.py --workdir=runs/cifar_cifar
  python launch.py --config=configs/cifar_cifar.py:gpu --workdir=runs/cifar_cifar

configs/mnist_mnist.py's recipe for CIFAR-10 twice (32x32 RGB; our copy is
JPEG re-encoded, ../shared/data/README.md), its GPU length, and a CPU length
that fills the issue's 90 minutes of 2 CPU cores (docs/papers.md). A pair of one
dataset has no first image: the loss and the scores take each pair in the
better of its two orders. The eval pairs the 10,000 test images as LASS
pairs MNIST (docs/papers.md): image i with image
``default_rng(100).permutation(10000)[i]``.
"""

import ml_collections

from configs import mnist_mnist


LENGTHS = mnist_mnist.LENGTHS


def get_config(length: str = 'cpu') -> ml_collections.ConfigDict:
  """The CIFAR-10+CIFAR-10 configuration; `length` is one of `LENGTHS`."""
  config = mnist_mnist.get_config(length)
  config.data.sources = ('cifar10', 'cifar10')
  # Colour sources: both decoders predict RGB.
  config.model.digit_channels = 3
  if length == 'cpu':
    config.num_train_steps = 16_000
  return config
