"""Writing a file so that it is never seen half written."""

import contextlib
import os
import pathlib
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | pathlib.Path) -> Iterator[pathlib.Path]:
  """A temporary path to write `path` through; renamed onto it on success.

  The file at `path` is either its old self or the complete new one, never
  half written: an interruption, a full disk or a crash leaves it as it
  was (and removes the temporary file where it can). The temporary name
  keeps the suffix, so writers that pick a format by it still do.

  Args:
    path: the file to (re)write; its folder is created if absent.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.stem}.tmp{os.getpid()}{path.suffix}')
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
