"""Many processes, one mesh: JAX's multi-process runtime, one process per host.

On a TPU pod slice or a GPU cluster, every host runs the same command and
`initialize` joins them (`jax.distributed.initialize`); `jax.devices()` then
lists every process's devices, and the trainer's mesh spans them all. Each
process feeds its own devices' shards; the train step, its pair sampling,
BatchNorm statistics and the loss are global, so N processes train exactly
as one process with the same devices would.

What differs between processes lives here:

  * `is_primary`: process 0 alone writes metrics, TensorBoard, eval outputs,
    config.json and figures (orbax coordinates the checkpoint writes itself);
  * `to_host`: fetches results, gathering the shards other processes hold;
  * `any_process`, `check_same`: agreements, so that every process stops, or
    fails, together.

With one process (the default) every function is a cheap no-op.
"""

import hashlib
import socket
import time
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from mixae_jax.errors import ConfigError

# How long a process waits for the coordinator (process 0) to answer before
# it gives up with one line; --coordinator_timeout changes it.
DEFAULT_TIMEOUT_S = 120


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
  """Joins this process to the others, before anything else uses JAX.

  With all three arguments (one machine, or any cluster launched by hand),
  they say who is who. With none, JAX reads its cluster's environment: the
  TPU pod slice's metadata, SLURM's ``SLURM_*`` or Open MPI's ``OMPI_*``
  variables (`jax.distributed.initialize`'s cluster detection).

  On the CPU the processes' collectives go through gloo.

  Args:
    coordinator_address: ``host:port`` of process 0, which listens there.
    num_processes: how many processes take part.
    process_id: this process's number, 0 to num_processes - 1.
    timeout_s: how long to wait for the coordinator.

  Raises:
    ConfigError: arguments that do not fit, an address process 0 cannot
      listen on, or a coordinator that does not answer within `timeout_s`.
  """
  given = [a is not None for a in (coordinator_address, num_processes,
                                   process_id)]
  if any(given) and not all(given):
    raise ConfigError('--coordinator_address, --num_processes and '
                      '--process_id go together: give all three (e.g. '
                      '--coordinator_address=127.0.0.1:12345 --num_processes=2 '
                      '--process_id=0), or none to read the cluster\'s '
                      'environment (TPU pod, SLURM, Open MPI)')
  if all(given):
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ConfigError(f'--process_id={process_id} does not fit '
                        f'--num_processes={num_processes}: it must be 0 to '
                        f'{num_processes - 1}')
    _check_coordinator(coordinator_address, process_id, num_processes,
                       timeout_s)
  # Set before the backend starts; it only concerns CPU devices.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(coordinator_address, num_processes,
                               process_id, initialization_timeout=timeout_s)
  except (ValueError, RuntimeError) as e:
    if all(given):
      raise
    detail = ' '.join(str(e).split())
    raise ConfigError(f'--distributed found no cluster to join ({detail}); '
                      'run it on a TPU pod slice or under SLURM / Open MPI, '
                      'or give --coordinator_address, --num_processes and '
                      '--process_id') from None
  logging.info('Process %d of %d: %d local device(s) of %d.',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def _check_coordinator(address: str, process_id: int, num_processes: int,
                       timeout_s: float) -> None:
  """Fails with one line where JAX would wait, then abort with a C++ trace."""
  host, _, port = address.rpartition(':')
  if not host or not port.isdigit():
    raise ConfigError(f'--coordinator_address={address} is not host:port '
                      '(e.g. 127.0.0.1:12345, or the first host\'s name and '
                      'a free port)')
  who = f'process {process_id} of {num_processes}'
  if process_id == 0:  # The coordinator listens: can it?
    try:
      with socket.create_server((host, int(port))):
        return
    except OSError as e:
      raise ConfigError(f'{who} cannot listen on --coordinator_address='
                        f'{address} ({e.strerror or e}); it must be this '
                        'host\'s address and a free port') from None
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      socket.create_connection((host, int(port)), timeout=2).close()
      return
    except OSError as e:
      if time.monotonic() > deadline:
        raise ConfigError(
            f'{who}: no coordinator answered at {address} within {timeout_s} '
            f's ({e.strerror or e}); start process 0 there (all processes '
            'with the same --coordinator_address), or raise '
            '--coordinator_timeout') from None
      time.sleep(0.5)


def process_count() -> int:
  return jax.process_count()


def is_primary() -> bool:
  """Whether this process writes the run's files (process 0)."""
  return jax.process_index() == 0


def to_host(tree: Any) -> Any:
  """`jax.device_get`, gathering arrays whose shards other processes hold.

  Every process must call it with arrays of the same global shapes (it is a
  collective when some are spread over several processes).
  """
  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return jax.device_get(x)
  return jax.tree.map(fetch, tree)


def any_process(flag: bool) -> bool:
  """Whether `flag` is set in any process (a collective with several)."""
  if process_count() == 1:
    return bool(flag)
  flags = multihost_utils.process_allgather(np.asarray([int(flag)], np.int32))
  return bool(np.asarray(flags).any())


def check_same(value: str, what: str) -> None:
  """Fails in every process, with one line, unless all give the same `value`.

  Raises:
    ConfigError: naming `what` and the processes that differ.
  """
  if process_count() == 1:
    return
  digest = np.frombuffer(hashlib.sha256(value.encode()).digest()[:8], np.int64)
  digests = np.asarray(multihost_utils.process_allgather(digest)).reshape(-1)
  if (digests != digests[0]).any():
    differ = [i for i, d in enumerate(digests) if d != digests[0]]
    raise ConfigError(
        f'{what} differs between processes (process {jax.process_index()} has '
        f'{value}; processes {differ} differ from process 0): every process '
        f'must be given the same {what}, on a folder they all share')
