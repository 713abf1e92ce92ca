"""mixae_jax: separate the mean of an MNIST digit and a CIFAR-10 image.

Public API:
  * `Separator`: restore a trained model and separate mixtures.
  * `make_mixtures`: the task's preprocessing, uint8 sources -> mixtures.

Importing the package only defines things: platform tuning
(`mixae_jax.tuning`) is applied by the command line alone.
"""

from mixae_jax.data.preprocessing import make_mixtures
from mixae_jax.inference import Separator

__all__ = ['Separator', 'make_mixtures']
__version__ = '0.1.0'
