"""A seconds-long run of a tiny U-Net: the tests' and rehearsals' config.

  python launch.py --config=configs/tiny.py --workdir=runs/tiny

configs/quick.py shrunk until every part of a run (training, periodic and
final evals, checkpoints, figures) takes seconds. Its scores mean nothing;
it checks that everything works.
"""

import ml_collections

from configs import quick


def get_config() -> ml_collections.ConfigDict:
  """The tiny configuration."""
  config = quick.get_config()
  config.model.widths = (4, 8)
  config.batch_size = 8
  config.num_train_steps = 6
  config.optimizer.warmup_steps = 2
  # quick.py's peak is for 1,600 steps at a real width, not a few tiny ones.
  config.optimizer.learning_rate = 2e-3
  # Adam and ReLU compile faster than quick.py's Muon and GELU, and the suite
  # compiles many steps; tests/test_train.py and test_optimizer.py train Muon
  # on their own.
  config.optimizer.name = 'adam'
  config.model.activation = 'relu'
  config.log_every_steps = 2
  config.checkpoint.every_steps = 3
  config.eval.num_pairs = 40
  # 40 = 16 + 16 + 8: the padded last batch is exercised.
  config.eval.batch_size = 16
  config.eval.every_steps = 3
  config.eval.periodic_num_pairs = 16
  return config
