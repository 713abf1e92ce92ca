"""Command line: ``python launch.py`` (or the installed ``mixae`` command).

  python launch.py --config=configs/dual.py --workdir=runs/dual            # train
  python launch.py --mode=eval --workdir=runs/dual                         # evaluate

A mistake of the user's (bad data, config, checkpoint or input) ends with one
line, ``error: ...``, and exit status 2; ``--verbose`` shows the traceback.
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from mixae_jax import configuration
from mixae_jax.errors import ConfigError, MixaeError

MODES = ('train', 'eval')

FLAGS = flags.FLAGS
flags.DEFINE_enum('mode', 'train', MODES,
                  'train: train (resuming from --workdir) then evaluate; '
                  'eval: evaluate the latest checkpoint in --workdir.')
flags.DEFINE_string('workdir', None,
                    'Run folder: checkpoints, metrics.jsonl, TensorBoard '
                    'events, eval/ outputs.', required=True)
flags.DEFINE_bool('verbose', False,
                  'Show full tracebacks and library logs.')
config_flags.DEFINE_config_file(
    'config', None,
    'Config file, e.g. configs/dual.py; override fields with '
    '--config.<field>=value. Optional with --mode=eval, which defaults to the '
    "run's saved config.json.", lock_config=True)


class _QuietLibraries(std_logging.Filter):
  """Hides the libraries' INFO chatter (orbax logs every file it touches)."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or '/mixae_jax/' in record.pathname


def run(mode: str, workdir: str, config=None) -> dict:
  """What the command line does, callable from Python.

  Args:
    mode: one of `MODES`.
    workdir: the run folder.
    config: a ConfigDict; with mode 'eval' it defaults to the run's saved one.

  Returns:
    The evaluation record written to ``<workdir>/eval/metrics.json``.
  """
  # Imported here so that `--help` and flag errors answer without loading jax.
  from mixae_jax import train  # pylint: disable=g-import-not-at-top

  if mode == 'train':
    if config is None:
      raise ConfigError('--mode=train needs --config, e.g. '
                        '--config=configs/dual.py')
    return train.train_and_evaluate(config, workdir)
  if config is None:
    config = configuration.load(workdir)
  return train.evaluate_checkpoint(config, workdir)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.INFO)
  if not FLAGS.verbose:
    logging.get_absl_handler().addFilter(_QuietLibraries())
  try:
    run(FLAGS.mode, FLAGS.workdir, FLAGS.config)
  except MixaeError as e:
    if FLAGS.verbose:
      raise
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def entry_point() -> None:
  """The ``mixae`` console script."""
  app.run(main)
