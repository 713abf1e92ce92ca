"""Paths a user gives: local or mounted folders, never a mangled URL.

`pathlib` reads ``gs://bucket/run`` as the relative folder ``gs:/bucket/run``
and would quietly write there. Until workdirs in cloud storage are supported,
every path a user gives goes through `local`, which names the URL instead.
"""

import pathlib
import re

from mixae_jax.errors import ConfigError

_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


def local(path: str | pathlib.Path, what: str) -> pathlib.Path:
  """`path` as a `pathlib.Path`.

  Args:
    path: what the user gave.
    what: how the user gave it, for the message (e.g. '--workdir').

  Raises:
    ConfigError: `path` is a URL (``gs://...``, ``s3://...``).
  """
  if isinstance(path, str) and _URL.match(path):
    raise ConfigError(
        f'{what}={path} is a URL: cloud storage is not supported yet; use a '
        'local folder, or mount the bucket (e.g. gcsfuse, or Google Drive in '
        'Colab) and give its local path')
  return pathlib.Path(path)
