"""Default config: a U-Net separator, one shared encoder and twin decoders.

  python launch.py --config=configs/dual.py --workdir=runs/dual

The full run is meant for a GPU or TPU, sized for about 8 minutes on one
H200 (docs/levers.md, "Muon, and GELU"); configs/quick.py is its
short CPU version. Override any field on the command line, e.g.
``--config.batch_size=256 --config.num_train_steps=20000``. Durations are in
steps; values that depend on others (the learning-rate decay length, the
warm-up cap) are derived in code, so overrides stay consistent. Why each
value was chosen, with its measurement: docs/levers.md.
"""

import ml_collections

from mixae_jax.data import local_files


def get_config() -> ml_collections.ConfigDict:
  """The default (U-Net) configuration."""
  config = ml_collections.ConfigDict()
  # Seeds the initial parameters, the training pairs and the dropout masks.
  config.seed = 0
  # What the network learns: 'separate' (mixture -> digit and image), or the
  # reference designs' 'reconstruct_mixture' and 'reconstruct_digit'.
  config.task = 'separate'

  config.model = ml_collections.ConfigDict()
  # Architecture: 'unet', or a reference design: 'seed004', 'mixture_ae',
  # 'digit_ae' (mixae_jax/models).
  config.model.name = 'unet'
  # U-Net channels per level, from 32x32 down; the last is the bottleneck.
  config.model.widths = (32, 64, 128, 256)
  # Channels the digit decoder predicts: 1 (grey, repeated to RGB) or 3.
  config.model.digit_channels = 1
  # How the decoders' outputs become the two estimates: 'consistent'
  # (projected so that their mean is the mixture, both in [0, 1], the digit
  # grey) or 'twin' (as they are). U-Net only.
  config.model.head = 'consistent'
  # The size the true digits were upsampled from (28: MNIST), which the
  # 'consistent' head projects onto; 0: not known (digits drawn at 32x32).
  config.model.digit_resized_from = 28
  # The nonlinearity after each BatchNorm: 'relu' or 'gelu' (tanh form).
  config.model.activation = 'relu'
  # 'twin' (one decoder per source) or 'shared' (one decoder predicting both
  # sources' channels, at half the decoders' cost).
  config.model.decoders = 'twin'

  # The U-Net's activations and convolutions in training and eval:
  # 'float32', or 'bfloat16' (mixed precision, for GPUs and TPUs: parameters,
  # optimizer state, loss, SSIM and the head stay float32). Separator always
  # runs float32.
  config.dtype = 'float32'

  config.data = ml_collections.ConfigDict()
  # The two sources each mixture is made of, first and second: any two of
  # 'mnist', 'cifar10' and 'folder:PATH' (the PNG/JPEG files under PATH,
  # RGB), the same one twice included (mixae_jax/data/sources.py). Images
  # take the larger size and the most channels of the two; one source twice
  # is scored under the better of the two orders.
  config.data.sources = ('mnist', 'cifar10')
  # The side a folder source's images are resized to (bilinear).
  config.data.image_size = 32
  # A folder source without train/ and test/ subfolders: the fraction of
  # its files (sorted by name, every k-th) held out as its test split.
  config.data.test_fraction = 0.1
  # 'auto' (the local folder if complete, else tfds), 'local' or 'tfds'.
  config.data.source = 'auto'
  # Folder with the standard MNIST / CIFAR-10 files ('' means none): by
  # default $MIXAE_DATA_DIR, else the .cache/data that set-up wrote.
  config.data.dir = local_files.default_folder()
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
  # Total optimizer steps.
  config.num_train_steps = 60_000

  config.optimizer = ml_collections.ConfigDict()
  # 'muon' (Muon's orthogonalised momentum for the hidden convolution
  # kernels, Adam for the rest; U-Net only), or 'adam' (AdamW when
  # weight_decay > 0).
  config.optimizer.name = 'muon'
  # Peak learning rate (Muon's steps are scaled to Adam's size: one rate
  # serves both).
  config.optimizer.learning_rate = 4e-3
  # 'cosine' (linear warm-up, then cosine decay to the end) or 'constant'.
  config.optimizer.schedule = 'cosine'
  # Linear warm-up steps (capped at num_train_steps).
  config.optimizer.warmup_steps = 1000
  # The cosine schedule's final learning rate, as a fraction of the peak.
  config.optimizer.final_lr_fraction = 0.01
  # Decoupled weight decay (AdamW; with Muon, of its kernels); 0: none.
  config.optimizer.weight_decay = 0.0
  # Clip gradients to this global norm; 0 disables clipping.
  config.optimizer.grad_clip_norm = 0.0

  config.loss = ml_collections.ConfigDict()
  # loss = digit_weight * L(digit) + image_weight * L(CIFAR image), where
  # L = P + ssim_weight * (1 - SSIM) and P is the pixel term below.
  # The pixel term: 'mse' (mean squared error) or 'l1' (the gradient of the
  # mean absolute error, at the MSE's scale).
  config.loss.pixel = 'mse'
  # Weight of the digit's loss.
  config.loss.digit_weight = 1.0
  # Weight of the image's loss.
  config.loss.image_weight = 1.0
  # Weight of the (1 - SSIM) term (dm-pix SSIM, as in the eval); 0: none.
  config.loss.ssim_weight = 0.2

  config.eval = ml_collections.ConfigDict()
  # Fixed eval pairs drawn from the test splits (data.pipeline.pairing).
  config.eval.num_pairs = 10_000
  # Seed of the eval pairing; same seed and num_pairs, same pairs.
  config.eval.pairing_seed = 0
  # Mixtures per eval batch (global).
  config.eval.batch_size = 500
  # Evaluate every this many steps during training (0: only at the end).
  config.eval.every_steps = 5000
  # Pairs used by those periodic evals (the first of the fixed pairs); the
  # final eval always uses all num_pairs.
  config.eval.periodic_num_pairs = 2000

  # Log train metrics every this many steps (the only host syncs).
  config.log_every_steps = 100

  config.checkpoint = ml_collections.ConfigDict()
  # Save a checkpoint every this many steps, and always at the end.
  config.checkpoint.every_steps = 2000
  # Keep this many of the latest checkpoints.
  config.checkpoint.max_to_keep = 3
  return config
