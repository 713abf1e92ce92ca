"""Paths a user gives: a local folder or a cloud-storage URL, as `epath.Path`.

`pathlib` reads ``gs://bucket/run`` as the relative folder ``gs:/bucket/run``
and would quietly write there. Every path a user gives goes through
`resolve` instead, which returns an `etils.epath.Path`: a `pathlib.Path` for
a local folder, and for a URL a path that reads and writes the store
through fsspec (``gs://`` through gcsfs, the ``cloud`` extra). A URL whose
scheme nothing here serves, or whose client is not installed, is named in
one line.

`configure_clients` sets the clients up: fresh listings, and an emulator
(``STORAGE_EMULATOR_HOST``) for tensorstore too.
"""

import importlib
import os
import re

from etils import epath

from mixae_jax.errors import ConfigError

_URL = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*)://')

# Each URL scheme epath serves -> (the fsspec client it needs, how to get it).
CLIENTS = {
    'gs': ('gcsfs', "pip install 'mixae_jax[cloud]'"),
    's3': ('s3fs', 'pip install s3fs'),
    'az': ('adlfs', 'pip install adlfs'),
    'hf': ('huggingface_hub', 'pip install huggingface_hub'),
}


def scheme(path: str | os.PathLike[str]) -> str | None:
  """The URL scheme of `path` ('gs' for ``gs://b/x``), or None if local."""
  match = _URL.match(os.fspath(path))
  return match.group(1).lower() if match else None


def is_remote(path: str | os.PathLike[str]) -> bool:
  """Whether `path` names an object store rather than a local folder."""
  return scheme(path) is not None


def resolve(path: str | os.PathLike[str], what: str) -> epath.Path:
  """`path` as an `epath.Path`, local or in cloud storage.

  Args:
    path: what the user gave: a folder, or a URL such as ``gs://b/run``.
    what: how the user gave it, for the message (e.g. '--workdir').

  Raises:
    ConfigError: `path` is a URL with a scheme nothing here serves, or
      whose client library is not installed.
  """
  name = scheme(path)
  if name is not None:
    if name not in CLIENTS:
      served = ', '.join(f'{s}://' for s in CLIENTS)
      raise ConfigError(
          f'{what}={path}: {name}:// is not a storage this reads or writes; '
          f'give a local folder or a URL of {served}')
    module, install = CLIENTS[name]
    try:
      importlib.import_module(module)
    except ImportError:
      raise ConfigError(
          f'{what}={path} is in cloud storage, which needs {module}: '
          f'{install}') from None
    configure_clients()
  return epath.Path(path)


def canonical(path: epath.Path) -> str:
  """One spelling of `path` for every process: a URL, or an absolute path."""
  return os.fspath(path) if is_remote(path) else os.fspath(path.resolve())


def configure_clients() -> None:
  """Sets up the storage clients a run uses; idempotent.

  Called by the entry point, and by `resolve` for every URL, before any
  client is made (epath keeps the first one it makes):
  - gcsfs keeps a bucket's listings by default and sees only its own
    writes: a checkpoint that tensorstore or another process (a resumed
    run, a second host) wrote would stay unseen. It lists anew each time;
    a run lists its workdir a few times per save.
  - Where ``STORAGE_EMULATOR_HOST`` names an emulator (e.g.
    fake-gcs-server), which gcsfs and google-cloud-storage read,
    tensorstore, orbax's array writer, is sent there too: it reads its own
    variable, and asks even an emulator for a token.
  """
  try:
    import fsspec  # pylint: disable=g-import-not-at-top
  except ImportError:  # No bucket client installed: nothing to set up.
    return
  fsspec.config.conf.setdefault('gcs', {}).setdefault('cache_timeout', 0)
  host = os.environ.get('STORAGE_EMULATOR_HOST')
  if host:
    if '://' not in host:
      host = f'http://{host}'
    os.environ.setdefault('TENSORSTORE_GCS_HTTP_URL', host)
    os.environ.setdefault('GOOGLE_AUTH_TOKEN_FOR_TESTING', 'emulator')


def storage_failure(path: str | os.PathLike[str],
                    e: BaseException) -> str | None:
  """Why reading or writing `path` failed, in words; None if not storage's.

  A local folder fails with an OSError; a bucket fails with its client's
  errors (`describe_remote_error`).
  """
  if is_remote(path):
    return describe_remote_error(path, e)
  for err in _chain(e):  # orbax wraps the OSErrors its threads hit.
    if isinstance(err, OSError):
      return err.strerror or str(err)
  return None


def _chain(e: BaseException | None):
  """`e` and the exceptions it was raised from or during."""
  seen = set()
  while e is not None and id(e) not in seen:
    yield e
    seen.add(id(e))
    e = e.__cause__ or e.__context__


def describe_remote_error(path: str | os.PathLike[str],
                          e: BaseException) -> str | None:
  """Why the store refused an operation on `path`, or None if it did not.

  The clients (gcsfs, tensorstore, google-auth) each report a missing
  bucket, refused credentials or a lost connection in their own way; this
  names the cause in words a user can act on.
  """
  bucket = f'{scheme(path)}://{os.fspath(path).split("://", 1)[1].split("/")[0]}'
  for err in _chain(e):
    text = str(err)
    code = getattr(err, 'code', None) or getattr(err, 'status', None)
    # gcsfs raises a 403 as OSError('Forbidden: ...'), a 401 as its
    # HttpError; tensorstore names the gRPC status in its message.
    if type(err).__module__.startswith('google.auth') or code in (401, 403) \
        or isinstance(err, PermissionError) or text.startswith('Forbidden') \
        or 'PERMISSION_DENIED' in text or 'UNAUTHENTICATED' in text:
      return (f'the store refused access to {bucket} ({_short(text)}); sign '
              'in (gcloud auth application-default login) or set '
              'GOOGLE_APPLICATION_CREDENTIALS to a key that may use it')
    if isinstance(err, FileNotFoundError) or code == 404 \
        or 'NOT_FOUND' in text:
      return (f'the bucket {bucket} does not exist (or these credentials '
              'cannot see it); create it or give another one')
    if isinstance(err, (ConnectionError, TimeoutError)) \
        or type(err).__module__.startswith('aiohttp') \
        or 'UNAVAILABLE' in text or 'DEADLINE_EXCEEDED' in text:
      return (f'the connection to the store of {bucket} failed '
              f'({_short(text)}); check the network and rerun')
  return None


def _short(text: str, limit: int = 120) -> str:
  """The first line of an error's text, cut to `limit` characters."""
  line = text.strip().splitlines()[0] if text.strip() else 'no reason given'
  return line if len(line) <= limit else line[:limit - 3] + '...'
