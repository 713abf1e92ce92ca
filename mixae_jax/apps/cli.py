"""Command line: ``python launch.py`` (or the installed ``mixae`` command).

  python launch.py --config=configs/dual.py --workdir=runs/dual       # train
  python launch.py --mode=eval --workdir=runs/dual                    # evaluate
  python launch.py --mode=export --workdir=runs/dual \
      --output_dir=pretrained/dual                                    # release
  python launch.py --mode=separate --workdir=pretrained/dual \
      --input=a.png,b.png --output_dir=out                            # separate
  python launch.py --mode=separate --workdir=pretrained/dual \
      --digit=d.png --image=c.png --output_dir=out                    # mix, separate
  python launch.py --mode=serve --workdir=pretrained/dual --port=8080 # demo page

A mistake of the user's (bad data, config, checkpoint or input) ends with one
line, ``error: ...``, and exit status 2; ``--verbose`` shows the traceback.
Ctrl-C (SIGINT) or SIGTERM during training saves a checkpoint at the step
in flight and exits with 130 or 143 (`mixae_jax.interrupts`); rerunning the
same command resumes there.
The platform tuning of `mixae_jax.tuning` is applied here, at start-up,
and nowhere else; ``MIXAE_PLATFORM_TUNING=0`` turns it off.
"""

import logging as std_logging
import os
import sys
import threading

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from mixae_jax import config_io
from mixae_jax import interrupts
from mixae_jax import paths
from mixae_jax import tuning
from mixae_jax.apps import config_files
from mixae_jax.errors import ConfigError, MixaeError

MODES = ('train', 'eval', 'separate', 'export', 'serve')

FLAGS = flags.FLAGS
flags.DEFINE_enum('mode', 'train', MODES,
                  'train: train (resuming from --workdir) then evaluate; '
                  'eval: evaluate the latest checkpoint in --workdir; '
                  'separate: separate image files with the model in --workdir; '
                  'export: copy the model of --workdir (no optimizer state) '
                  'into a release folder, --output_dir; '
                  'serve: a local web page to separate digits and images '
                  'with the model in --workdir (needs the demo extra: '
                  'pip install -e ".[demo]").')
flags.DEFINE_string('workdir', None,
                    'Run folder: checkpoints, metrics.jsonl, TensorBoard '
                    'events, eval/ outputs (or a released model such as '
                    'pretrained/dual for --mode=separate).', required=True)
flags.DEFINE_list('input', [],
                  '--mode=separate: mixture PNGs (32x32 RGB), comma-separated '
                  '(further files may follow as arguments).')
flags.DEFINE_string('digit', None,
                    '--mode=separate: a digit PNG (28x28 or 32x32, grey or '
                    'RGB) to mix with --image, then separate.')
flags.DEFINE_string('image', None,
                    '--mode=separate: a 32x32 RGB PNG to mix with --digit.')
flags.DEFINE_string('output_dir', None,
                    'Where outputs go. --mode=separate: the separated PNGs '
                    '(default: separated); --mode=eval: eval/, metrics.jsonl '
                    'and events (default: --workdir; use it for a read-only '
                    'or released model folder); --mode=export: the release '
                    'folder (required).')
flags.DEFINE_bool('resize', False,
                  '--mode=separate: resize inputs of another size (bilinear) '
                  'instead of refusing them.')
flags.DEFINE_string('host', '127.0.0.1',
                    '--mode=serve: the address to serve on (127.0.0.1: this '
                    'machine only; 0.0.0.0: every network interface).')
flags.DEFINE_integer('port', None,
                     '--mode=serve: the port (default: a free one, printed).',
                     lower_bound=1, upper_bound=65535)
flags.DEFINE_string('coordinator_address', None,
                    'Several processes (one per host): host:port of process '
                    '0, which listens there; with --num_processes and '
                    '--process_id. See the README, "Many hosts".')
flags.DEFINE_integer('num_processes', None,
                     'Several processes: how many take part.', lower_bound=1)
flags.DEFINE_integer('process_id', None,
                     'Several processes: this one\'s number, 0 to '
                     '--num_processes - 1. Process 0 writes the files.',
                     lower_bound=0)
flags.DEFINE_bool('distributed', False,
                  'Several processes, found from the cluster\'s environment '
                  '(TPU pod slice, SLURM, Open MPI) instead of the three '
                  'flags above.')
flags.DEFINE_integer('coordinator_timeout', 120,
                     'Several processes: seconds to wait for process 0 before '
                     'giving up.', lower_bound=1)
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
    if '/mixae_jax/' in record.pathname:
      return True
    message = record.getMessage()
    # Orbax warns that a read-only manager is read-only: expected for eval.
    if 'read only' in message:
      return False
    # A bucket that stopped answering: gcsfs and orbax's threads log each
    # failed request with its traceback; the run's one line names it.
    if 'out of retries' in message or '_SignalingThread.run() raised' in message:
      return False
    return record.levelno >= std_logging.WARNING


def run(mode: str, workdir: str, config=None, **separate_args):
  """What the command line does, callable from Python.

  Args:
    mode: one of `MODES`.
    workdir: the run folder.
    config: a ConfigDict; with mode 'eval' it defaults to the run's saved one.
    **separate_args: for mode 'separate', `separate.separate_files`'s
      arguments (output_dir, inputs, digit, image, resize); for 'eval' and
      'export', output_dir only; for 'serve', host and port.

  Returns:
    The evaluation record (train, eval), the files written (separate) or
    the model folder written (export).
  """
  # Imported here so that `--help` and flag errors answer without loading jax.
  # pylint: disable=g-import-not-at-top
  if mode == 'separate':
    from mixae_jax.apps import separate  # pylint: disable=g-import-not-at-top
    written = separate.separate_files(workdir, **separate_args)
    for path in written:
      print(path)
    return written
  if mode == 'serve':
    try:
      from mixae_jax.apps import demo  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      if (e.name or '').split('.')[0] != 'gradio':
        raise
      raise ConfigError('--mode=serve needs Gradio, an optional extra: pip '
                        'install -e ".[demo]" (or `make demo`)') from None
    return demo.serve(workdir, **separate_args)
  if mode == 'train':
    if config is None:
      raise ConfigError('--mode=train needs --config, e.g. '
                        '--config=configs/dual.py')
    from mixae_jax import train
    return train.train_and_evaluate(config, workdir)
  if mode == 'export':
    from mixae_jax.apps import export  # pylint: disable=g-import-not-at-top
    if not separate_args.get('output_dir'):
      raise ConfigError('--mode=export needs --output_dir, e.g. '
                        '--output_dir=pretrained/dual')
    written = export.export(workdir, separate_args['output_dir'])
    print(written)
    return written
  from mixae_jax import evaluate
  if config is None:
    config = config_io.load(workdir)
  return evaluate.evaluate_checkpoint(config, workdir,
                                      separate_args.get('output_dir'))


def _join_processes() -> None:
  """Joins the other processes when the flags ask for several."""
  by_flags = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if not FLAGS.distributed and all(f is None for f in by_flags):
    return
  if FLAGS.mode not in ('train', 'eval'):
    raise ConfigError(f'--mode={FLAGS.mode} runs in one process; only '
                      '--mode=train and --mode=eval run on several')
  from mixae_jax import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize(*by_flags, timeout_s=FLAGS.coordinator_timeout)


def _is_closed_loop_noise(exc: BaseException | None) -> bool:
  """Whether `exc` is orbax's closed event loop answering a failed read."""
  return isinstance(exc, RuntimeError) and 'Event loop is closed' in str(exc)


def _drop_closed_loop_noise() -> None:
  """Keeps a failed checkpoint read to its one line.

  When a read fails, tensorstore's reads still in flight answer into the
  event loop orbax has closed, and the resulting RuntimeErrors are printed
  from other threads after the error was already reported. Only those are
  dropped; every other error still prints.
  """
  unraisable_hook, thread_hook, except_hook = (
      sys.unraisablehook, threading.excepthook, sys.excepthook)
  sys.unraisablehook = lambda u: (
      None if _is_closed_loop_noise(u.exc_value) else unraisable_hook(u))
  threading.excepthook = lambda a: (
      None if _is_closed_loop_noise(a.exc_value) else thread_hook(a))
  sys.excepthook = lambda t, v, tb: (
      None if _is_closed_loop_noise(v) else except_hook(t, v, tb))


def main(argv: list[str]) -> None:
  extra = argv[1:]
  if extra and FLAGS.mode != 'separate':
    raise app.UsageError(f'unexpected arguments: {" ".join(extra)}')
  logging.set_verbosity(logging.INFO)
  if not FLAGS.verbose:
    logging.get_absl_handler().addFilter(_QuietLibraries())
    _drop_closed_loop_noise()
  try:
    _join_processes()
    separate_args = {'output_dir': FLAGS.output_dir}
    if FLAGS.mode == 'separate':
      separate_args = dict(output_dir=FLAGS.output_dir or 'separated',
                           inputs=list(FLAGS.input) + extra, digit=FLAGS.digit,
                           image=FLAGS.image, resize=FLAGS.resize)
    if FLAGS.mode == 'serve':
      separate_args = dict(host=FLAGS.host, port=FLAGS.port)
    if FLAGS.mode == 'train':  # The trainer handles the signals itself.
      run(FLAGS.mode, FLAGS.workdir, FLAGS.config, **separate_args)
    else:
      with interrupts.StopSignals(f'--mode={FLAGS.mode}; every file written '
                                  'so far is whole (none is partial)'):
        run(FLAGS.mode, FLAGS.workdir, FLAGS.config, **separate_args)
  except MixaeError as e:
    if FLAGS.verbose:
      raise
    _fail(str(e))
  except interrupts.Interrupted as e:
    if FLAGS.verbose:
      raise
    _fail(str(e), e.exit_code)
  except KeyboardInterrupt:  # Before any handler was in place: nothing to save.
    if FLAGS.verbose:
      raise
    _fail('interrupted (SIGINT) while starting; nothing had been written', 130)
  except Exception as e:  # pylint: disable=broad-except
    reason = None if FLAGS.verbose else _storage_failure(e)
    if reason is None:
      raise
    _fail(reason)


def _storage_failure(e: BaseException) -> str | None:
  """A bucket's refusal or lost connection behind `e`, in one line.

  The clients raise their own errors from deep inside a save or a read;
  whichever the user's URL was, the message names its bucket and the cause.
  """
  init_from = FLAGS.config.get('init_from') if FLAGS.config else None
  for url in (FLAGS.workdir, FLAGS.output_dir, init_from):
    if url and paths.is_remote(url):
      reason = paths.describe_remote_error(url, e)
      if reason:
        return f'{url}: {reason}'
  return None


def _show_flags_in_help() -> None:
  """Makes ``--help`` list this module's flags (absl shows the main module's)."""
  for name in ('mode', 'workdir', 'config', 'input', 'digit', 'image',
               'output_dir', 'resize', 'host', 'port', 'coordinator_address',
               'num_processes', 'process_id', 'distributed',
               'coordinator_timeout', 'verbose'):
    FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])


def _fail(message: str, status: int = 2) -> None:
  """Prints ``error: message`` (or the interruption's message) and exits
  with `status`, nothing after it."""
  print(message if status != 2 else f'error: {message}', file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  if status == 2:  # Not after a signal: a peer may be gone, not just late.
    _leave_the_other_processes()
  # Not sys.exit: after a failed restore, orbax's background tasks can print
  # tracebacks of their own while the interpreter shuts down.
  os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
  os._exit(status)


def _leave_the_other_processes() -> None:
  """Waits, in a run of several processes, until every one is leaving.

  A set-up error (a batch size, a folder) is found by every process, but not
  at the same moment. Had process 0 exited at once, its coordinator would be
  gone while the others still start, and JAX aborts them with a C++ trace
  instead of their own one line. JAX's shutdown waits at a barrier for all.
  """
  jax = sys.modules.get('jax')
  if jax is None or not jax.distributed.is_initialized():
    return
  try:
    jax.distributed.shutdown()
  except Exception:  # pylint: disable=broad-except
    pass  # A process already gone: leaving is all that is left to do.


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with one-line errors instead of tracebacks."""
  if any(arg in ('-h', '--help', '-?', '--helpshort') for arg in argv[1:]):
    # absl's own --help exits with status 1; asking for help is no error.
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
  verbose = '--verbose' in argv
  config_path = None
  for arg in argv[1:]:
    if arg.startswith('--config='):
      config_path = arg.split('=', 1)[1].partition(':')[0]
      problem = config_files.config_file_problem(config_path)
      if problem and not verbose:
        _fail(problem)
  try:
    rest = FLAGS(argv)
    if FLAGS.config is not None:
      FLAGS.config.get('seed')  # Surfaces a config file that failed to load.
  except flags.Error as e:
    # A bad value (--config.batch_size=abc) or a missing required flag.
    _fail(f'{e} (see --help, or the comment on the field in the config file)')
  except KeyError as e:
    # ml_collections' message already suggests the nearest field name.
    detail = ' '.join(str(e.args[0] if e.args else e).split())
    _fail(f'no such config field: {detail}')
  except Exception as e:  # pylint: disable=broad-except
    # The config file is Python: it can fail in any way Python code can.
    if verbose or config_path is None:
      raise
    if isinstance(e, AttributeError) and "no attribute 'get'" in str(e):
      _fail(f'config file {config_path}: get_config() returned '
            f'{type(FLAGS["config"].value).__name__}, not a ConfigDict; '
            f'{config_files.EXAMPLE_CONFIG}')
    _fail(config_files.config_load_error(config_path, e))
  return rest


def launch() -> None:
  """Runs the command line (what ``launch.py`` calls)."""
  # First: glibc and XLA read their settings once, when the process starts.
  tuning.apply_process_tuning()
  paths.configure_clients()
  sys.argv = config_files.find_config(sys.argv)
  _show_flags_in_help()
  app.run(main, flags_parser=_parse_flags)
