"""The U-Net with and without `models.ConcatConv`, timed side by side.

  python benchmarks/concat_conv.py                 # ~4 min on 2 cores
  python benchmarks/concat_conv.py --rounds=3 --seconds=3

Each U-Net decoder level convolves the upsampled features beside the
encoder's skip. `models.UNetDecoder` hands the two to `models.ConcatConv`
(one convolution per input, summed); the alternative timed here is the plain
``nn.Conv`` over ``jnp.concatenate([up, skip], -1)``: the same function and
parameters (tests/test_models.py checks both). It times configs/dual.py's
train step (as benchmarks/throughput.py does: Adam, MSE, batch
``--batch_size``) and its inference at ``--eval_batch_size``, both forms in
turns in one process, ``--seconds`` per run, and prints img/s (median, min, max over ``--rounds``)
and the ratios. The last line is one JSON object.
"""

import json
import os
import statistics
import sys

from absl import app
from absl import flags
import flax.linen as nn
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import models  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('rounds', 5, 'Timed runs of each form and step.')
# throughput.py's flags (batch_size, eval_batch_size, seconds) are reused.


class ConcatenatingDecoder(models.UNetDecoder):
  """`models.UNetDecoder` as it was: one nn.Conv over the concatenation."""

  @nn.compact
  def __call__(self, h, skips, train=False):
    for features, skip in zip(reversed(self.widths[:-1]), reversed(skips)):
      h = models.UpConv2x(features, 2)(h)
      h = models.ConvBlock(features, self.norm)(
          jnp.concatenate([h, skip], -1), train)
    h = nn.sigmoid(nn.Conv(self.out_channels, (1, 1))(h))
    return jnp.broadcast_to(h, h.shape[:-1] + (3,)) if h.shape[-1] == 1 else h


def build(decoder: type[nn.Module]) -> dict[str, object]:
  """The train and inference steps of the U-Net with `decoder`, compiled."""
  saved = models.UNetDecoder
  # UNet looks its decoder class up when traced, which the constructors
  # below do (each runs its step once).
  models.UNetDecoder = decoder
  try:
    return {'train': throughput.JaxTrain('unet', FLAGS.batch_size),
            'infer': throughput.JaxInfer('unet', FLAGS.eval_batch_size)}
  finally:
    models.UNetDecoder = saved


def main(argv):
  del argv
  forms = {'concat_conv': build(models.UNetDecoder),
           'concatenate': build(ConcatenatingDecoder)}
  sizes = {'train': FLAGS.batch_size, 'infer': FLAGS.eval_batch_size}
  rates = {(f, s): [] for f in forms for s in sizes}
  for _ in range(FLAGS.rounds):
    for form, steps in forms.items():
      for kind, step in steps.items():
        rates[form, kind].append(throughput.timed(step, FLAGS.seconds) * sizes[kind])
  result = {}
  for kind, size in sizes.items():
    medians = {}
    for form in forms:
      r = rates[form, kind]
      medians[form] = statistics.median(r)
      print(f'{kind:5s} batch {size:4d}  {form:12s} img/s  median {medians[form]:7.1f}'
            f'  min {min(r):7.1f}  max {max(r):7.1f}')
    ratio = medians['concat_conv'] / medians['concatenate']
    print(f'{kind:5s} ConcatConv / concatenate: {ratio:.3f}')
    result[kind] = {**{f'{f}_img_s': m for f, m in medians.items()}, 'ratio': ratio}
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
