"""What the consistent head's upsampled-digit projection costs.

  python benchmarks/head_cost.py                     # ~2 min on 2 cores

`models.project_digit` solves, per image, a small constrained least-squares
problem on the 28x28 pre-image (`models.PROJECTION_TRAIN_STEPS` solver
steps in training, `models.PROJECTION_STEPS` at inference) for the default
model (``model.digit_resized_from=28``). This times the U-Net's train step
(as benchmarks/throughput.py does: Adam, MSE, batch ``--batch_size``) and
its inference (`evaluate.separate`), each with the projection and without it
(``digit_resized_from=0``: the feasible clip only), in turns in one process,
``--seconds`` per run; it prints img/s (median, min and max over
``--rounds``) and the ratios. The last line is one JSON object.
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
from mixae_jax import evaluate  # pylint: disable=wrong-import-position
from mixae_jax import train  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('rounds', 5, 'Timed runs of each form.')


def _config(resized_from: int):
  config = throughput.network_config('unet')
  config.model.digit_resized_from = resized_from
  return config


class Step(throughput.JaxTrain):
  """throughput.JaxTrain for the U-Net with a given digit prior."""

  def __init__(self, batch_size: int, resized_from: int):
    # pylint: disable=super-init-not-called
    self.state = train.create_train_state(_config(resized_from))
    self.batch = throughput.fixed_batch(batch_size)
    self.key = jax.random.key(0)
    # A function of its own per form: jax.jit caches traces per function.
    step = lambda state, batch, key: train.train_step(state, batch, key)
    self.step_fn = jax.jit(step, donate_argnums=0)
    self(sync=True)


class Infer(throughput.JaxInfer):
  """throughput.JaxInfer for the U-Net with a given digit prior."""

  def __init__(self, batch_size: int, resized_from: int):
    # pylint: disable=super-init-not-called
    state = train.create_train_state(_config(resized_from))
    self.state = evaluate.InferenceState(state.apply_fn, state.params,
                                         state.batch_stats)
    self.x = throughput.fixed_batch(batch_size).mixture
    self.fn = jax.jit(lambda state, x: evaluate.separate(state, x))
    self(sync=True)


def main(argv):
  del argv
  forms = {'train, projected': Step(FLAGS.batch_size, 28),
           'train, clip only': Step(FLAGS.batch_size, 0),
           'infer, projected': Infer(FLAGS.batch_size, 28),
           'infer, clip only': Infer(FLAGS.batch_size, 0)}
  rates = throughput.interleaved(forms, FLAGS.rounds, FLAGS.seconds,
                                 FLAGS.batch_size)
  result = {}
  for form, r in rates.items():
    result[form] = {'img_s': statistics.median(r), 'min': min(r), 'max': max(r)}
    print(f'unet {form:16s} img/s  median {result[form]["img_s"]:7.1f}  min '
          f'{min(r):7.1f}  max {max(r):7.1f}')
  for mode in ('train', 'infer'):
    ratio = (result[f'{mode}, projected']['img_s']
             / result[f'{mode}, clip only']['img_s'])
    result[f'{mode}_ratio'] = ratio
    print(f'unet {mode}: projected / clip only: {ratio:.3f}')
  print(json.dumps(result))


if __name__ == '__main__':
  flags.FLAGS.set_default('seconds', 4.0)
  app.run(main)
