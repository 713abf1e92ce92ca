"""A small metric-writing layer: JSONL and TensorBoard, scalars and images.

`MetricWriter` appends one JSON object per call to ``metrics.jsonl`` and
writes the same scalars (and PNG images) to TensorBoard event files, with no
TensorFlow needed. Read the JSONL back with `read_jsonl`.
"""

import io
import json
import math
import os
import pathlib
import tempfile
import time
from typing import Any, Mapping

import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from etils import epath

from mixae_jax import atomic_files
from mixae_jax import distributed
from mixae_jax import paths
from mixae_jax.errors import CheckpointError

METRICS_FILE = 'metrics.jsonl'


def check_writable(folder: str | os.PathLike[str],
                   flag: str = '--workdir') -> None:
  """Fails fast, before any work, when `folder` cannot be created or written.

  Args:
    folder: the folder a run will write to (created if absent), local or
      in a bucket.
    flag: the command-line flag that named it, for the message.

  Raises:
    CheckpointError: naming the folder and the system's reason.
  """
  folder = epath.Path(folder)
  # One probe per process: processes sharing a folder never remove another's.
  probe = folder / f'.mixae_write_test.{os.getpid()}'
  try:
    if folder.exists() and not folder.is_dir():
      raise NotADirectoryError(20, 'it is a file, not a folder')
    folder.mkdir(parents=True, exist_ok=True)
    probe.write_bytes(b'ok')
    probe.unlink()
  except Exception as e:  # pylint: disable=broad-except
    reason = paths.storage_failure(folder, e)
    if reason is None:
      raise
    raise CheckpointError(
        f'cannot write to {folder}: {reason}; make it writable, free '
        f'disk space, or choose another {flag} (nothing in it was '
        'changed)') from None



def _to_builtin(value: Any) -> Any:
  """Makes numpy scalars JSON-serialisable; non-finite floats become strings."""
  if isinstance(value, Mapping):
    return {k: _to_builtin(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_to_builtin(v) for v in value]
  if isinstance(value, (np.generic, np.ndarray)):
    value = value.item() if np.ndim(value) == 0 else value.tolist()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep the file strictly valid.
  return value


def write_json(path: str | os.PathLike[str], obj: Mapping[str, Any]) -> None:
  """Writes `obj` as indented JSON, atomically (a reader never sees half)."""
  with atomic_files.atomic_path(path) as tmp:
    tmp.write_text(json.dumps(_to_builtin(obj), indent=2) + '\n')


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """The records of a ``metrics.jsonl`` file, skipping a torn last line."""
  records = []
  path = epath.Path(path)
  if not path.exists():
    return records
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue  # A run killed mid-write leaves at most one torn line.
  return records


class MetricWriter:
  """Writes scalars to ``<workdir>/metrics.jsonl`` and TensorBoard events.

  In a local workdir both files are appended to as the run goes. An object
  store cannot append: there the writer keeps both in a local staging
  folder and uploads each whole, as a new version of its object, so the
  bucket never holds a torn file: after a record at most every
  `UPLOAD_SECONDS` (the event files grow with the run, and uploading them
  at every log step would cost more than the step), and at `flush` and
  `close`.
  """

  UPLOAD_SECONDS = 30

  def __init__(self, workdir: str | os.PathLike[str]):
    self._workdir = epath.Path(workdir)
    self._staging = None
    self._uploaded = None  # time.monotonic() of the last upload.
    if paths.is_remote(workdir):
      self._staging = tempfile.TemporaryDirectory(prefix='mixae_metrics_')
      local = pathlib.Path(self._staging.name)
      if (self._workdir / METRICS_FILE).exists():  # A resumed run's.
        (local / METRICS_FILE).write_bytes(
            (self._workdir / METRICS_FILE).read_bytes())
    else:
      local = pathlib.Path(workdir)
      local.mkdir(parents=True, exist_ok=True)
    self._local = local
    self._jsonl = open(local / METRICS_FILE, 'a', encoding='utf-8')
    self._events = EventFileWriter(str(local / 'tensorboard'))

  def write_scalars(self, step: int, scalars: Mapping[str, Any],
                    kind: str = 'train') -> None:
    """Logs one record: ``{"kind": kind, "step": step, **scalars}``.

    Nested mappings (``{"mnist": {"psnr": ...}}``) become TensorBoard tags
    such as ``eval/mnist/psnr``.
    """
    record = {'kind': kind, 'step': int(step), 'time': time.time()}
    record.update(_to_builtin(scalars))
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    values = [summary_pb2.Summary.Value(tag=f'{kind}/{tag}', simple_value=v)
              for tag, v in _flatten(scalars)]
    self._add(step, summary_pb2.Summary(value=values))
    if self._staging is not None and (
        self._uploaded is None
        or time.monotonic() - self._uploaded >= self.UPLOAD_SECONDS):
      self.flush()

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    """Logs a uint8 [H, W, 3] image to TensorBoard as a PNG."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format='PNG')
    summary_image = summary_pb2.Summary.Image(
        height=image.shape[0], width=image.shape[1], colorspace=3,
        encoded_image_string=buffer.getvalue())
    self._add(step, summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, image=summary_image)]))

  def _add(self, step: int, summary: summary_pb2.Summary) -> None:
    self._events.add_event(
        event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def flush(self) -> None:
    self._jsonl.flush()
    self._events.flush()
    if self._staging is not None:
      for file in sorted(self._local.rglob('*')):
        if file.is_file():
          target = self._workdir / file.relative_to(self._local).as_posix()
          target.write_bytes(file.read_bytes())
      self._uploaded = time.monotonic()

  def close(self) -> None:
    self.flush()
    self._jsonl.close()
    self._events.close()
    if self._staging is not None:
      self._staging.cleanup()

  def __enter__(self) -> 'MetricWriter':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class NullWriter:
  """A `MetricWriter` that writes nothing: for processes other than 0."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any],
                    kind: str = 'train') -> None:
    del step, scalars, kind

  def write_image(self, step: int, tag: str, image: np.ndarray) -> None:
    del step, tag, image

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass

  def __enter__(self) -> 'NullWriter':
    return self

  def __exit__(self, *exc) -> None:
    pass


def open_writer(workdir: str | os.PathLike[str]) -> MetricWriter | NullWriter:
  """The run's metric writer: process 0's; the other processes write nothing."""
  return MetricWriter(workdir) if distributed.is_primary() else NullWriter()


def _flatten(tree: Mapping[str, Any], prefix: str = ''):
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, Mapping):
      yield from _flatten(value, name + '/')
    elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
      yield name, float(value)


# Where an interrupted run keeps the losses of the steps since its last log,
# so that the resumed run logs the same means as an uninterrupted one.
PENDING_METRICS_FILE = 'train_metrics_pending.json'


def save_pending_metrics(workdir: epath.Path, step: int,
                         history: list[tuple[int, dict[str, Any]]]) -> None:
  """Keeps the losses of the steps since the last log (an interrupted run's)."""
  write_json(workdir / PENDING_METRICS_FILE, {
      'step': step, 'history': [[s, {k: float(v) for k, v in m.items()}]
                                for s, m in history]})


def load_pending_metrics(workdir: epath.Path, step: int
                         ) -> list[tuple[int, dict[str, Any]]]:
  """The saved losses if they lead up to `step` (the restored checkpoint's)."""
  path = workdir / PENDING_METRICS_FILE
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError):
    return []
  if record.get('step') != step:  # Left by a run resumed from elsewhere.
    return []
  # float32, as the step returns them: the means then match bit for bit.
  return [(s, {k: np.float32(v) for k, v in m.items()})
          for s, m in record['history']]
