"""The two forms of `models.UpConv2x` (k=4), timed side by side.

  python benchmarks/upconv_forms.py                  # ~11 min on 2 cores
  python benchmarks/upconv_forms.py --rounds=3 --step=false

seed004's decoders upsample with 4x4 stride-2 transposed convolutions, which
`models.UpConv2x` computes with stride-1 convolutions in one of two forms of
the same function (tests/test_models.py checks both against
nn.ConvTranspose):

- 'window': one 3x3 convolution to 4x the features, then depth-to-space.
  Each output parity reads 4 of the window's 9 taps; the other 5 are zeros,
  so it does 9/4 of the transposed convolution's multiply-adds.
- 'phases': one 2x2 convolution per output parity, with only its taps.

First, each k=4 layer shape of seed004 and digit_ae alone (batch ``--batch_size``):
ms per call forward, and forward plus both gradients, per form. Then, with
``--step``, the whole seed004 train step and inference (as
benchmarks/throughput.py times them) with the model's rule ('auto': phases
from `models.UPCONV_PHASES_MIN_FEATURES` output features up) against
'window' everywhere. All forms run in turns in one process, ``--seconds``
per run, so machine noise hits them alike; medians, min and max over
``--rounds``. The last line is one JSON object.
"""

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import models  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('rounds', 5, 'Timed runs of each form.')
flags.DEFINE_bool('step', True, 'Also time the whole seed004 step and inference.')
# throughput.py's flags (batch_size, eval_batch_size, seconds) are reused.

# The k=4 UpConv2x layers of seed004 (the first three) and of digit_ae's
# decoder (the last three): input size, in features, out features.
LAYERS = ((4, 256, 128), (8, 128, 64), (16, 64, 3),
          (4, 32, 16), (8, 16, 8), (16, 8, 1))


class Layer:
  """One UpConv2x alone, jitted: forward, or forward and both gradients."""

  def __init__(self, size: int, cin: int, cout: int, form: str, grad: bool,
               batch_size: int):
    layer = models.UpConv2x(cout, 4, form=form)
    self.x = jax.random.normal(jax.random.key(0), (batch_size, size, size, cin))
    self.variables = layer.init(jax.random.key(1), self.x)
    if grad:
      loss = lambda v, x: jnp.sum(jnp.square(layer.apply(v, x)))
      self.fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    else:
      self.fn = jax.jit(layer.apply)
    self(sync=True)

  def __call__(self, sync: bool = False):
    out = self.fn(self.variables, self.x)
    if sync:
      jax.block_until_ready(out)


def with_rule(make, min_features: int):
  """Builds `make()` with `models.UPCONV_PHASES_MIN_FEATURES` set, then restores it."""
  saved = models.UPCONV_PHASES_MIN_FEATURES
  models.UPCONV_PHASES_MIN_FEATURES = min_features
  try:
    return make()
  finally:
    models.UPCONV_PHASES_MIN_FEATURES = saved


def report(rates: dict[str, list[float]], unit: str) -> dict:
  out = {}
  for form, r in rates.items():
    out[form] = {'median': statistics.median(r), 'min': min(r), 'max': max(r)}
    print(f'    {form:7s} {unit} median {out[form]["median"]:8.2f}  min '
          f'{out[form]["min"]:8.2f}  max {out[form]["max"]:8.2f}', flush=True)
  return out


def main(argv):
  del argv
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, batch '
        f'{FLAGS.batch_size}, {FLAGS.rounds} rounds of {FLAGS.seconds} s')
  result = {'layers': {}}
  for size, cin, cout in LAYERS:
    for grad in (False, True):
      name = f'{size}x{size} {cin}->{cout} {"fwd+grads" if grad else "forward"}'
      forms = {form: Layer(size, cin, cout, form, grad, FLAGS.batch_size)
               for form in ('window', 'phases')}
      # ms per call: `interleaved` counts calls per second when its batch is 1.
      rates = throughput.interleaved(forms, FLAGS.rounds, FLAGS.seconds, 1)
      ms = {form: [1e3 / r for r in rs] for form, rs in rates.items()}
      print(f'  {name}:')
      result['layers'][name] = report(ms, 'ms')
      result['layers'][name]['phases / window'] = (
          result['layers'][name]['phases']['median'] /
          result['layers'][name]['window']['median'])
  if FLAGS.step:
    # 'window' everywhere: no layer is wide enough for the phases.
    builders = {
        'train': lambda: throughput.JaxTrain('seed004', FLAGS.batch_size),
        'infer': lambda: throughput.JaxInfer('seed004', FLAGS.eval_batch_size)}
    for what, make in builders.items():
      forms = {'auto': with_rule(make, models.UPCONV_PHASES_MIN_FEATURES),
               'window': with_rule(make, 1 << 30)}
      batch = FLAGS.batch_size if what == 'train' else FLAGS.eval_batch_size
      start = time.perf_counter()
      rates = throughput.interleaved(forms, FLAGS.rounds, FLAGS.seconds, batch)
      print(f'  seed004 {what} ({time.perf_counter() - start:.0f} s):')
      result[f'seed004 {what}'] = report(rates, 'img/s')
      result[f'seed004 {what}']['auto / window'] = (
          statistics.median(rates['auto']) / statistics.median(rates['window']))
      print(f'    auto / window: {result[f"seed004 {what}"]["auto / window"]:.3f}')
  print(json.dumps(result))


if __name__ == '__main__':
  flags.FLAGS.set_default('seconds', 3.0)
  np.set_printoptions(precision=3)
  app.run(main)
