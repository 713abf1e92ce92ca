"""Finding and checking the config file a command names, with one-line errors.

``--config=configs/dual.py`` works from any folder, and a config file that
is missing, empty, not Python or broken gets one line naming the problem
(and the line of the file) before absl or ml_collections see it.
"""

import os
import pathlib
import sys

# The repository's configs/ folder (beside the package in a clone or an
# editable install). It is not installed as a package of its own.
CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[2] / 'configs'


def find_config(argv: list[str]) -> list[str]:
  """Lets ``--config=configs/dual.py`` work from any folder.

  A config path that does not exist relative to the working directory is
  looked up in the repository's configs/ (``dual``, ``dual.py`` and
  ``configs/dual.py`` all name configs/dual.py). The folder above the
  config's configs/ goes on ``sys.path``, as for ``python launch.py``, so
  that configs can build on each other (``from configs import dual``).
  """
  resolved = []
  for arg in argv:
    if arg.startswith('--config=') and '.' not in arg.split('=', 1)[0][2:]:
      path, sep, override = arg.split('=', 1)[1].partition(':')
      if not pathlib.Path(path).exists():
        name = pathlib.Path(path).name
        candidate = CONFIGS_DIR / (name if name.endswith('.py') else name + '.py')
        if candidate.is_file():
          path = str(candidate)
          arg = f'--config={candidate}{sep}{override}'
      folder = pathlib.Path(path).resolve().parent
      if folder.name == 'configs' and str(folder.parent) not in sys.path:
        sys.path.insert(0, str(folder.parent))
    resolved.append(arg)
  return resolved


EXAMPLE_CONFIG = 'use e.g. --config=configs/dual.py'


def config_file_problem(path: str) -> str | None:
  """What makes `path` unusable as a config file, or None if nothing does."""
  file = pathlib.Path(path)
  if file.is_dir():
    return f'--config={path} is a folder, not a config file; {EXAMPLE_CONFIG}'
  if not file.exists():
    return f'config file {path} not found; {EXAMPLE_CONFIG}'
  if file.suffix != '.py':
    return (f'config file {path} is not a Python file (.py); a config is a '
            f'.py file whose get_config() returns a ConfigDict; {EXAMPLE_CONFIG}')
  if not os.access(file, os.R_OK):
    return (f'config file {path} cannot be read (permission denied); make it '
            'readable')
  if not file.read_bytes().strip():
    return (f'config file {path} is empty; it must define get_config() '
            f'returning a ConfigDict; {EXAMPLE_CONFIG}')
  return None


def config_load_error(path: str, error: BaseException) -> str:
  """One line for a config file whose code failed: what, and where in it."""
  line = getattr(error, 'lineno', None) if isinstance(error, SyntaxError) else None
  tb = error.__traceback__
  while tb is not None:  # The deepest frame in the config file itself.
    if pathlib.Path(tb.tb_frame.f_code.co_filename).name == pathlib.Path(path).name:
      line = tb.tb_lineno
    tb = tb.tb_next
  where = f' (line {line})' if line else ''
  detail = ' '.join(str(error.msg if isinstance(error, SyntaxError)
                       else error).split())
  if isinstance(error, AttributeError) and 'get_config' in detail:
    return (f'config file {path} defines no get_config(); a config file '
            f'defines get_config() returning a ConfigDict; {EXAMPLE_CONFIG}')
  return (f'config file {path} failed to load: {type(error).__name__}: '
          f'{detail}{where}; fix it (--verbose shows the traceback)')
