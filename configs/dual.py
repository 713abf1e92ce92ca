"""Default config: a U-Net separator, one shared encoder and twin decoders.

The full run is meant for a GPU or TPU:

  python launch.py --config=configs/dual.py --workdir=runs/dual

Any field can be overridden on the command line, e.g.
``--config.batch_size=256 --config.num_train_steps=20000``. Durations are in
steps; values that depend on others (the learning-rate decay length, the
warm-up cap) are derived in code, so overrides stay consistent.
"""

import os

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The default (U-Net) configuration."""
  config = ml_collections.ConfigDict()
  # Seeds the initial parameters, the training pairs and the dropout masks.
  config.seed = 0

  # What the network learns: 'separate' (mixture -> digit and image). The
  # reference designs configs/mixture_ae.py and configs/digit_ae.py use
  # 'reconstruct_mixture' (mixture -> mixture) and 'reconstruct_digit'
  # (clean digit -> digit).
  config.task = 'separate'

  config.model = ml_collections.ConfigDict()
  # Architecture: 'unet' (this) or 'seed004' (the reference report's design).
  config.model.name = 'unet'
  # U-Net channels per level, from 32x32 down; the last is the bottleneck.
  config.model.widths = (32, 64, 128, 256)
  # Normalisation after each convolution: 'batch', 'group' or 'none'. 'batch'
  # scored +1.0 dB over 'group' at the quick budget (README, "Levers") and
  # at full width (benchmarks/quality.py --set=zoo, row dual).
  config.model.norm = 'batch'
  # Channels the digit decoder predicts: 1 repeated to RGB (the digit is
  # grey), or 3.
  config.model.digit_channels = 1
  # How the decoders' outputs become the two estimates: 'consistent'
  # (projected so that their mean is the mixture, and the digit grey when
  # digit_channels=1), 'twin' (as they are) or 'derive' (one digit decoder;
  # image = 2 * mixture - digit). U-Net only. benchmarks/quality.py
  # --set=levers measures each.
  config.model.head = 'consistent'
  # The 'consistent' head's knowledge of the digit: it was upsampled from
  # this size (28: MNIST, as data preprocessing does), so the head projects
  # the estimate onto such images (models.project_digit: never further from
  # the truth; +0.08 dB on pretrained/dual, benchmarks/head_projections.py).
  # 0: not known (a digit drawn at 32x32).
  config.model.digit_resized_from = 28

  config.data = ml_collections.ConfigDict()
  # 'auto' (local folder if complete, else tfds), 'local' or 'tfds'.
  config.data.source = 'auto'
  # Folder with the standard MNIST / CIFAR-10 files; '' means none.
  config.data.dir = os.environ.get('MIXAE_DATA_DIR', '')
  # tensorflow-datasets data_dir; '' means tfds's default (~/tensorflow_datasets).
  config.data.tfds_dir = ''
  # Training pairs: 0 draws fresh random (digit, image) pairs at every step;
  # N > 0 trains on N fixed pairs only (1: the single-pair experiment).
  config.data.train_pairs = 0

  # A run folder or released model (e.g. 'pretrained/dual') whose weights
  # start this run, with a fresh optimizer and schedule (fine-tuning); ''
  # starts from random weights. A workdir's own checkpoints take precedence.
  config.init_from = ''

  # Mixtures per training step (global, over all devices).
  config.batch_size = 128
  # Total optimizer steps; each draws fresh random (digit, image) pairs.
  config.num_train_steps = 100_000

  config.optimizer = ml_collections.ConfigDict()
  # Peak learning rate of Adam. 4e-3 beat 1e-3 by +1.0 dB at 1,000 steps of
  # 64 and by +0.77 dB (CIFAR SSIM +0.010) at 3,000 steps of 128
  # (benchmarks/quality.py --set=levers, rows lr1e-3 and lr4e-3; README,
  # "Levers"). The release's first GPU run (configs/dual_gpu.py) used 1e-3.
  config.optimizer.learning_rate = 4e-3
  # 'cosine' (linear warm-up, then cosine decay to the end) or 'constant'.
  config.optimizer.schedule = 'cosine'
  # Linear warm-up steps (capped at num_train_steps).
  config.optimizer.warmup_steps = 1000
  # Cosine schedule's final learning rate, as a fraction of the peak.
  config.optimizer.final_lr_fraction = 0.01
  # Decoupled weight decay (AdamW); 0 means plain Adam.
  config.optimizer.weight_decay = 0.0
  # Clip gradients to this global norm; 0 disables clipping.
  config.optimizer.grad_clip_norm = 0.0
  # Decay of an exponential moving average of the parameters, which eval and
  # export then use instead of the raw ones; 0 keeps none (docs/levers.md
  # has its measurement).
  config.optimizer.ema_decay = 0.0

  config.loss = ml_collections.ConfigDict()
  # loss = digit_weight * L(digit) + image_weight * L(CIFAR image), where
  # L = MSE + ssim_weight * (1 - SSIM).
  config.loss.digit_weight = 1.0
  config.loss.image_weight = 1.0
  # Weight of the (1 - SSIM) term (dm-pix SSIM, as in the eval); 0: MSE only.
  # 0.2 gave +0.7 dB PSNR and +0.02 CIFAR SSIM over MSE alone at the quick
  # budget (benchmarks/quality.py --set=levers); 1.0 scored the same PSNR.
  config.loss.ssim_weight = 0.2
  # The (1 - SSIM) weight of one output alone, in place of ssim_weight
  # (None: ssim_weight). Both outputs share one error (the consistent head),
  # so these choose where that error goes: in texture the SSIM hardly sees,
  # or evenly.
  config.loss.digit_ssim_weight = ml_collections.config_dict.placeholder(float)
  config.loss.image_ssim_weight = ml_collections.config_dict.placeholder(float)

  config.eval = ml_collections.ConfigDict()
  # Fixed eval pairs drawn from the test splits (see input_pipeline.pairing).
  config.eval.num_pairs = 10_000
  # Seed of the eval pairing; same seed and num_pairs, same pairs.
  config.eval.pairing_seed = 0
  # Mixtures per eval batch (global).
  config.eval.batch_size = 500
  # Evaluate every this many steps during training (0: only at the end).
  config.eval.every_steps = 5000
  # Pairs used by those periodic evals (the first of the fixed pairs);
  # the final eval always uses all num_pairs.
  config.eval.periodic_num_pairs = 2000

  # Log train metrics every this many steps (the only host syncs).
  config.log_every_steps = 100

  config.checkpoint = ml_collections.ConfigDict()
  # Save a checkpoint every this many steps, and always at the end.
  config.checkpoint.every_steps = 2000
  # Keep this many of the latest checkpoints.
  config.checkpoint.max_to_keep = 3
  return config
