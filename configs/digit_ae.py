"""Reference 003: a plain MNIST convolutional autoencoder with a 64-d latent.

  python launch.py --config=configs/digit_ae.py --workdir=runs/digit_ae

Trained on clean digits only (batch 32, 10 epochs of 60,000, Adam 1e-3; the
report ended at MSE 0.0079). On the separation protocol it is fed the
mixture: its output is the digit estimate and the image is derived as
``2 * mixture - digit`` (`models.DigitAE`).
"""

import ml_collections

from configs import dual


def get_config() -> ml_collections.ConfigDict:
  """The MNIST-autoencoder configuration."""
  config = dual.get_config()
  config.task = 'reconstruct_digit'
  config.model.name = 'digit_ae'
  config.batch_size = 32
  config.num_train_steps = 18_750
  # Constant-rate Adam at 1e-3: the reference reports' recipe.
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = 'constant'
  config.optimizer.warmup_steps = 0
  # Only the digit is a target; the derived image output is not trained.
  config.loss.image_weight = 0.0
  # The report's loss: MSE alone, without the default's SSIM term.
  config.loss.ssim_weight = 0.0
  return config
