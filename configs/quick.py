"""A short CPU run of the default U-Net: the README's main command.

  python launch.py --config=configs/quick.py --workdir=runs/quick

configs/dual.py's model family at half the width, trained for 1,900 steps of
64 at a higher peak learning rate: minutes on 2 CPU cores, compile and the
full 10,000-pair eval included (its scores: README, "Results"; how its
length and family were chosen: docs/levers.md, "Quality per unit of
compute").
"""

import ml_collections

from configs import dual


def get_config() -> ml_collections.ConfigDict:
  """The quick CPU configuration."""
  config = dual.get_config()
  config.model.widths = (16, 32, 64, 128)
  config.batch_size = 64
  config.num_train_steps = 1900
  # A short run wants a higher peak (docs/levers.md).
  config.optimizer.learning_rate = 1.6e-2
  config.optimizer.warmup_steps = 100
  config.eval.every_steps = 1000
  config.eval.periodic_num_pairs = 1000
  config.log_every_steps = 50
  config.checkpoint.every_steps = 1000
  return config
