"""The baseline: the reference report's encoder + twin bottleneck decoders.

  python launch.py --config=configs/seed004.py --workdir=runs/seed004

Same data, optimizer and eval protocol as configs/dual.py, with the report's
MSE loss; the model is the report's (8.5 M parameters, BatchNorm and
dropout, 128-d latent). The
report trained 50 epochs at batch 64 with constant-rate Adam: about 39,000
steps at 50,000 pairs per epoch.
"""

import ml_collections

from configs import dual


def get_config() -> ml_collections.ConfigDict:
  """The seed004 configuration."""
  config = dual.get_config()
  config.model.name = 'seed004'
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
