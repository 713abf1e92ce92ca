"""The recipe of the released model, pretrained/dual: two runs on one GPU.

  python launch.py --config=configs/release.py:pretrain --workdir=runs/release_pretrain
  python launch.py --mode=export --workdir=runs/release_pretrain --output_dir=runs/release_pretrain_export
  python launch.py --config=configs/release.py:finetune --workdir=runs/release_finetune
  python launch.py --mode=export --workdir=runs/release_finetune --output_dir=pretrained/dual

Frozen and self-contained: every field is written out here rather than
taken from configs/dual.py, so the recipe still makes the release after the
defaults move on. 'pretrain' trains the U-Net from random weights for 36,000
steps of 128; 'finetune' starts from its float16 export for a second
warm-up and cosine cycle of 25,000 steps (seed 1: other training pairs).
Its record: docs/released_model.md.
"""

import ml_collections

from mixae_jax.data import local_files

STAGES = ('pretrain', 'finetune')


def get_config(stage: str = 'pretrain') -> ml_collections.ConfigDict:
  """One stage of the release recipe: 'pretrain' or 'finetune'."""
  if stage not in STAGES:
    raise ValueError(f'configs/release.py:{stage}: the stage must be one of '
                     f'{STAGES}, e.g. --config=configs/release.py:pretrain')
  finetune = stage == 'finetune'
  config = ml_collections.ConfigDict()
  config.seed = 1 if finetune else 0
  config.task = 'separate'
  config.dtype = 'float32'
  config.model = ml_collections.ConfigDict(dict(
      name='unet', widths=(32, 64, 128, 256), digit_channels=1,
      head='consistent', digit_resized_from=28, activation='relu',
      decoders='twin'))
  config.data = ml_collections.ConfigDict(dict(
      sources=('mnist', 'cifar10'), image_size=32, test_fraction=0.1,
      source='auto', dir=local_files.default_folder(), tfds_dir='',
      train_pairs=0))
  # The first stage's export (the second command above).
  config.init_from = 'runs/release_pretrain_export' if finetune else ''
  config.batch_size = 128
  config.num_train_steps = 25_000 if finetune else 36_000
  config.optimizer = ml_collections.ConfigDict(dict(
      name='adam', learning_rate=4e-3 if finetune else 1e-3, schedule='cosine',
      warmup_steps=100 if finetune else 1000, final_lr_fraction=0.01,
      weight_decay=0.0, grad_clip_norm=0.0))
  config.loss = ml_collections.ConfigDict(dict(
      pixel='mse', digit_weight=1.0, image_weight=1.0, ssim_weight=0.2))
  config.eval = ml_collections.ConfigDict(dict(
      num_pairs=10_000, pairing_seed=0, batch_size=500,
      every_steps=6000 if finetune else 9000, periodic_num_pairs=2000))
  config.log_every_steps = 50 if finetune else 100
  config.checkpoint = ml_collections.ConfigDict(dict(
      every_steps=2000 if finetune else 3000, max_to_keep=3))
  return config
