"""A short CPU run of the default U-Net: the README's main command.

  python launch.py --config=configs/quick.py --workdir=runs/quick

configs/dual.py's model family at half the width, with GELU, trained with
Muon (weight decay 0.05) and the L1 pixel loss for 1,600 steps of 64 at a
higher peak learning rate: minutes on 2 CPU cores, compile and the full
10,000-pair eval included (its scores: README, "Results"; how its length
and recipe were chosen: docs/levers.md, "Muon, and GELU" and "The L1 loss
and weight decay").
"""

import ml_collections

from configs import dual


def get_config() -> ml_collections.ConfigDict:
  """The quick CPU configuration."""
  config = dual.get_config()
  config.model.widths = (16, 32, 64, 128)
  config.batch_size = 64
  config.num_train_steps = 1600
  # A short run wants a higher peak (docs/levers.md).
  config.optimizer.learning_rate = 1.6e-2
  # GELU is measured only at this budget so far (docs/levers.md).
  config.model.activation = 'gelu'
  # Measured at this budget only, as GELU (docs/levers.md).
  config.loss.pixel = 'l1'
  config.optimizer.weight_decay = 0.05
  config.optimizer.warmup_steps = 100
  config.eval.every_steps = 1000
  config.eval.periodic_num_pairs = 1000
  config.log_every_steps = 50
  config.checkpoint.every_steps = 1000
  return config
