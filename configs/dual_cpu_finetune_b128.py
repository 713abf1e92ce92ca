"""Fine-tuning at twice the batch: configs/dual_cpu_finetune.py's images in half the steps.

  python launch.py --config=configs/dual_cpu_finetune_b128.py --workdir=runs/dual_cpu_finetune_b128

The same cycle as configs/dual_cpu_finetune.py (from ``init_from``'s weights,
a fresh warm-up and cosine decay from peak 4e-3, seed 1) and the same
320,000 training mixtures, drawn 128 to a step for 2,500 steps instead of 64
for 5,000: about the same wall time on 2 CPU cores (40 minutes). Once the
batch-64 cycles had stopped paying (the eleventh gained +0.01 dB, the seed
spread), this one gained +0.03 dB on both sources (33.53 / 33.54 ->
33.56 / 33.57 dB, CIFAR SSIM 0.9621 -> 0.9624): the CPU recipe's last
release (docs/released_model.md, "The CPU recipe"). Its gradients average twice the
mixtures, so the cosine's low-rate end settles with less noise.
"""

import ml_collections

from configs import dual_cpu_finetune


def get_config() -> ml_collections.ConfigDict:
  """The batch-128 fine-tuning configuration."""
  config = dual_cpu_finetune.get_config()
  # Twice configs/dual_cpu_finetune.py's 64 mixtures per step...
  config.batch_size = 128
  # ...for half its steps: the same number of training mixtures.
  config.num_train_steps = 2500
  # Warm-up and eval cadence halved with the steps.
  config.optimizer.warmup_steps = 100
  config.eval.every_steps = 1250
  return config
