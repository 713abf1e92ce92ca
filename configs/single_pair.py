"""The assignment taken literally (reference 002): train on one mixture.

  python launch.py --config=configs/single_pair.py --workdir=runs/single_pair

One (digit, image) training pair, batch 1, 10,000 steps (the report's
10,000 epochs of its one image) of reference 002's mixture autoencoder. With
no access to the originals it can only return the mixture it learned; the
report's separation figure used the other original, i.e. the answer
(README, "Results", and docs/levers.md, where it is set beside ours).
"""

import ml_collections

from configs import mixture_ae


def get_config() -> ml_collections.ConfigDict:
  """The single-pair configuration."""
  config = mixture_ae.get_config()
  config.data.train_pairs = 1
  config.batch_size = 1
  config.num_train_steps = 10_000
  config.log_every_steps = 500
  config.checkpoint.every_steps = 5000
  return config
