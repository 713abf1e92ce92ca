"""Reference 001: an autoencoder trained to reconstruct the mixture itself.

  python launch.py --config=configs/mixture_ae.py --workdir=runs/mixture_ae

The report trained one encoder and one decoder on mean images for 50 epochs
and gave only its reconstruction loss. Here it is reference 002's layer
stack (`models.MixtureAE`), trained on fresh mixtures, and scored on the
separation protocol with its reconstruction as both estimates: it shows what
an autoencoder of the mixture recovers of each source (no more than the
mixture does).
"""

import ml_collections

from configs import dual


def get_config() -> ml_collections.ConfigDict:
  """The mixture-autoencoder configuration."""
  config = dual.get_config()
  config.task = 'reconstruct_mixture'
  config.model.name = 'mixture_ae'
  # 50 epochs of 50,000 mean images at batch 64.
  config.batch_size = 64
  config.num_train_steps = 39_000
  # Constant-rate Adam at 1e-3: the reference reports' recipe.
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = 'constant'
  config.optimizer.warmup_steps = 0
  # The report's loss: MSE alone, without the default's SSIM term.
  config.loss.ssim_weight = 0.0
  return config
