"""mixae_jax: separate the mean of an MNIST digit and a CIFAR-10 image.

Public API:
  * `Separator`: restore a trained model and separate mixtures.
  * `make_mixtures`: the task's preprocessing, uint8 sources -> mixtures.
"""

# Before anything starts a JAX backend: XLA reads XLA_FLAGS once, then.
from mixae_jax import xla_cpu

xla_cpu.apply()

from mixae_jax.preprocessing import make_mixtures
from mixae_jax.separator import Separator

__all__ = ['Separator', 'make_mixtures']
__version__ = '0.1.0'
