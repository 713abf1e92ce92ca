"""What the consistent head's upsampled-digit projection costs a train step.

  python benchmarks/head_cost.py                     # ~1 min on 2 cores

`models.project_digit` adds, per image, three rounds of two 32x32 matrix
products and a clip to the default model (``model.digit_resized_from=28``).
This times the U-Net's train step (as benchmarks/throughput.py does: Adam,
MSE, batch ``--batch_size``) with the projection and without it
(``digit_resized_from=0``: the feasible clip only), in turns in one process,
``--seconds`` per run; it prints img/s (median, min and max over
``--rounds``) and the ratio. The last line is one JSON object.
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
from mixae_jax import train  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('rounds', 5, 'Timed runs of each form.')


class Step(throughput.JaxTrain):
  """throughput.JaxTrain for the U-Net with a given digit prior."""

  def __init__(self, batch_size: int, resized_from: int):
    config = throughput.network_config('unet')
    config.model.digit_resized_from = resized_from
    self.state = train.create_train_state(config)
    self.batch = throughput.fixed_batch(batch_size)
    self.key = jax.random.key(0)
    # A function of its own per form: jax.jit caches traces per function.
    step = lambda state, batch, key: train.train_step(state, batch, key)
    self.step_fn = jax.jit(step, donate_argnums=0)
    self(sync=True)


def main(argv):
  del argv
  forms = {'projected': Step(FLAGS.batch_size, 28),
           'clip only': Step(FLAGS.batch_size, 0)}
  rates = throughput.interleaved(forms, FLAGS.rounds, FLAGS.seconds,
                                 FLAGS.batch_size)
  result = {}
  for form, r in rates.items():
    result[form] = {'img_s': statistics.median(r), 'min': min(r), 'max': max(r)}
    print(f'unet {form:9s} img/s  median {result[form]["img_s"]:7.1f}  min '
          f'{min(r):7.1f}  max {max(r):7.1f}')
  result['ratio'] = result['projected']['img_s'] / result['clip only']['img_s']
  print(f'unet projected / clip only: {result["ratio"]:.3f}')
  print(json.dumps(result))


if __name__ == '__main__':
  flags.FLAGS.set_default('seconds', 4.0)
  app.run(main)
