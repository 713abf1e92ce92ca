"""Writing a file so that it is never seen half written, locally or in a bucket."""

import contextlib
import os
import pathlib
import tempfile
from typing import Iterator

from etils import epath

from mixae_jax import paths


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
  """A local temporary path to write `path` through, put in place on success.

  The file at `path` is either its old self or the complete new one, never
  half written: an interruption, a full disk or a crash leaves it as it
  was (and removes the temporary file where it can). The temporary name
  keeps the suffix, so writers that pick a format by it still do.

  A local `path` is written beside itself and renamed onto it. A `path` in
  an object store is written to a local temporary file and then uploaded
  as one object, which the store makes visible whole or not at all.

  Args:
    path: the file to (re)write, local or a URL (``gs://...``); its folder
      is created if absent.
  """
  if paths.is_remote(path):
    path = epath.Path(path)
    with tempfile.TemporaryDirectory(prefix='mixae_upload_') as folder:
      tmp = pathlib.Path(folder) / f'upload{path.suffix}'
      yield tmp
      path.write_bytes(tmp.read_bytes())
    return
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.stem}.tmp{os.getpid()}{path.suffix}')
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
