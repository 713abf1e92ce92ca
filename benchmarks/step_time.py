"""Seconds per train step of a config, the step `launch.py` would run.

  python -m benchmarks.step_time --config=configs/dual.py
  python -m benchmarks.step_time --config=configs/quick.py --config.optimizer.name=adam

Times the trainer's own step (`steps.make_step_fn`: in-step pair sampling,
the network, the loss with its SSIM term, the config's optimizer, Muon's
Newton-Schulz products included) on synthetic uint8 sources, one device,
after compiling; with the platform tuning applied as ``launch.py`` applies
it. ``benchmarks/throughput.py`` instead times a bare Adam step of the same
network against PyTorch; this is what sizes a run (`benchmarks/quality.py
--set=compute`, ``benchmarks/device_check.sh``).

The last line is one JSON object: config, batch, dtype, optimizer,
``step_s``, ``steps_per_s`` and ``compile_s``.
"""

import json
import time

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from mixae_jax import config_io, train_state, tuning
from mixae_jax.steps import make_step_fn
from mixae_jax.data import pipeline

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Defined only when run as a script: benchmarks/quality.py imports
  # `step_seconds` and has flags of its own.
  config_flags.DEFINE_config_file('config', 'configs/dual.py',
                                  'The training config to time.')
  flags.DEFINE_integer('steps', 20, 'Steps timed, after two untimed ones.')


def step_seconds(config: ml_collections.ConfigDict, steps: int = 20
                 ) -> tuple[float, float]:
  """(seconds per train step, seconds to compile it) of `config` here.

  Args:
    config: a training config (its model, batch, dtype, loss and optimizer).
    steps: steps timed, after the compile and one warm step.
  """
  rng = np.random.default_rng(0)
  pool = pipeline.TrainPool(
      first=jax.numpy.asarray(rng.integers(0, 256, (1000, 28, 28), np.uint8)),
      second=jax.numpy.asarray(
          rng.integers(0, 256, (1000, 32, 32, 3), np.uint8)))
  state = train_state.create_train_state(config)
  step_fn = make_step_fn(config)
  start = time.perf_counter()
  state, m = step_fn(state, pool)  # Compile.
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - start
  state, m = step_fn(state, pool)
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(steps):
    state, m = step_fn(state, pool)
  jax.block_until_ready(m)
  return (time.perf_counter() - start) / steps, compile_s


def main(argv: list[str]) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  config_io.validate(config, num_devices=1)  # The step runs on one.
  step_s, compile_s = step_seconds(config, FLAGS.steps)
  record = {
      'config': config_flags.get_config_filename(FLAGS['config']),
      'device': jax.devices()[0].device_kind,
      'batch_size': config.batch_size, 'dtype': config.dtype,
      'optimizer': config.optimizer.name,
      'step_s': round(step_s, 6), 'steps_per_s': round(1 / step_s, 2),
      'compile_s': round(compile_s, 1)}
  print(f'{record["config"]}: {step_s * 1e3:.1f} ms per step of '
        f'{config.batch_size} ({record["dtype"]}, {record["optimizer"]}), '
        f'compiled in {compile_s:.1f} s')
  print(json.dumps(record))


if __name__ == '__main__':
  _define_flags()
  tuning.apply_process_tuning()  # As launch.py trains.
  app.run(main)
