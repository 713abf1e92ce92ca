"""The train step with and without `conv.fusion_barrier`, timed side by side.

  python benchmarks/conv_barrier.py                  # ~8 min on 2 cores
  python benchmarks/conv_barrier.py --networks=unet --rounds=3

The models' convolutions are `mixae_jax.conv.conv_general_dilated`, whose
weight gradient reads its input through `conv.fusion_barrier` so that
XLA:CPU copies it into the gradient's layout as a plain (tiled) transpose
instead of a scalar loop with the BatchNorm and ReLU fused in. The
alternative timed here is the same step traced with the barrier replaced by
the identity, which is what XLA compiles from `jax.lax.conv_general_dilated`
(tests/test_conv.py checks that the two compute the same gradients). Both
forms of each network's train step (as benchmarks/throughput.py times it:
Adam, MSE, batch ``--batch_size``) run in turns in one process,
``--seconds`` per run; it prints img/s (median, min and max over
``--rounds``), the ratio, and how many while loops (barriers) each compiled
step holds. The last line is one JSON object.
"""

import json
import os
import statistics
import sys

from absl import app
from absl import flags
import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import throughput  # pylint: disable=g-import-not-at-top,wrong-import-position
from mixae_jax import conv  # pylint: disable=wrong-import-position
from mixae_jax import train  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('rounds', 5, 'Timed runs of each form.')
# throughput.py's flags (networks, batch_size, seconds) are reused.


class Step(throughput.JaxTrain):
  """throughput.JaxTrain, with or without the barrier in its gradient."""

  def __init__(self, name: str, batch_size: int, barrier: bool):
    saved = conv.fusion_barrier
    if not barrier:
      conv.fusion_barrier = lambda x, like: x
    try:
      config = throughput.network_config(name)
      self.state = train.create_train_state(config)
      self.batch = throughput.fixed_batch(batch_size)
      self.key = jax.random.key(0)
      # A function of its own per form: jax.jit caches traces per function,
      # and both forms would otherwise share the first one's.
      step = lambda state, batch, key: train.train_step(state, batch, key)
      self.step_fn = jax.jit(step, donate_argnums=0)
      compiled = self.step_fn.lower(self.state, self.batch, self.key).compile()
      self.while_loops = compiled.as_text().count(' while(')
      self(sync=True)
    finally:
      conv.fusion_barrier = saved


def main(argv):
  del argv
  result = {}
  for name in FLAGS.networks:
    forms = {'barrier': Step(name, FLAGS.batch_size, True),
             'xla': Step(name, FLAGS.batch_size, False)}
    rates = throughput.interleaved(forms, FLAGS.rounds, FLAGS.seconds,
                                   FLAGS.batch_size)
    medians = {form: statistics.median(r) for form, r in rates.items()}
    for form, r in rates.items():
      print(f'{name:8s} {form:8s} img/s  median {medians[form]:7.1f}  min '
            f'{min(r):7.1f}  max {max(r):7.1f}  (while loops in the step: '
            f'{forms[form].while_loops})')
    ratio = medians['barrier'] / medians['xla']
    print(f'{name:8s} barrier / xla: {ratio:.3f}', flush=True)
    result[name] = {form: {'img_s': medians[form], 'min': min(r), 'max': max(r),
                           'while_loops': forms[form].while_loops}
                    for form, r in rates.items()}
    result[name]['ratio'] = ratio
  print(json.dumps(result))


if __name__ == '__main__':
  flags.FLAGS.set_default('seconds', 4.0)
  app.run(main)
