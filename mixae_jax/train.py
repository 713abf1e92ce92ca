"""The training loop: `train_and_evaluate`, behind ``launch.py --mode=train``.

It resumes from the latest checkpoint in ``workdir`` when there is one
(`train_state` holds what a checkpoint holds), trains to
``config.num_train_steps`` with the jitted step of `steps`, logs, saves and
evaluates periodically, never saves a NaN, and ends with the full eval on
the fixed eval pairs (`evaluate.run_eval`). Ctrl-C and SIGTERM save the
step in flight (`interrupts`); one run holds a workdir at a time
(`workdir_lock`).
"""

import functools
import os
import signal
import sys
import time
from typing import Any, Callable, Sequence

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from mixae_jax import checkpoints
from mixae_jax import config_io
from mixae_jax import distributed
from mixae_jax import evaluate
from mixae_jax import inference
from mixae_jax import interrupts
from mixae_jax import optimizer
from mixae_jax import paths
from mixae_jax import plots
from mixae_jax import run_length
from mixae_jax import sharding
from mixae_jax import steps
from mixae_jax import train_state
from mixae_jax import workdir_lock
from mixae_jax import writers
from mixae_jax.data import pipeline
from mixae_jax.errors import NonFiniteLossError
from mixae_jax.train_state import TrainState

# Called by the training loop as ``callback(event, step)``: event 'step' right
# after step `step` is dispatched (its computation may still be running),
# 'save' right after the checkpoint of `step` has started to be written,
# 'eval' just before a periodic eval after `step`. Tests pass one that kills
# or signals the process there.
Callback = Callable[[str, int], None]


def _inference_state(state: TrainState) -> inference.InferenceState:
  """The model a train state evaluates as (what --mode=eval restores)."""
  return inference.InferenceState(apply_fn=state.apply_fn, params=state.params,
                                  batch_stats=state.batch_stats)


def _check_finite(history: list[tuple[int, dict[str, Any]]],
                  manager: Any) -> None:
  """Raises NonFiniteLossError at the first non-finite loss in `history`."""
  for step, m in history:
    loss = float(m['loss'])
    if not np.isfinite(loss):
      _stop_non_finite(f'the training loss became {loss} at step {step}',
                       manager)


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x))
                              for x in jax.tree.leaves(tree)]))


def _check_state_finite(state: TrainState, step: int, manager: Any) -> None:
  """Raises NonFiniteLossError if the state to save holds NaN or inf.

  The logged loss of a step is computed before its update, so a finite
  loss does not prove that the updated parameters are finite.
  """
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  if not bool(_all_finite(variables)):
    _stop_non_finite(f'the parameters became non-finite (NaN or inf) at step '
                     f'{step}, though the loss was finite', manager)


def _stop_non_finite(what: str, manager: Any) -> None:
  manager.wait_until_finished()
  last = manager.latest_step()
  kept = (f'the last good checkpoint (step {last}) is kept' if last is not None
          else 'no checkpoint had been saved yet')
  raise NonFiniteLossError(
      f'{what}; stopped, and {kept}; lower optimizer.learning_rate (now set '
      'in the config) or set optimizer.grad_clip_norm')


def _mean_metrics(history: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
  return {k: float(np.mean([m[k] for _, m in history])) for k in history[0][1]}


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike[str],
                       callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
  """Trains (resuming from ``workdir`` if it has checkpoints), then evaluates.

  Args:
    config: a config like ``configs/dual.py``'s.
    workdir: where checkpoints, metrics, TensorBoard events and figures go.
    callbacks: called at each step, save and periodic eval (see `Callback`).

  Returns:
    The final evaluation record (what ``eval/metrics.json`` holds).

  Raises:
    interrupts.Interrupted: SIGINT or SIGTERM (when called from the main
      thread). During training, the step in flight is finished and saved
      first, so that the same call resumes where it stopped.
  """
  config_io.validate(config)
  workdir = paths.resolve(workdir, '--workdir')
  # With several processes: one run, so one folder and one config for all.
  distributed.check_same(paths.canonical(workdir), '--workdir')
  distributed.check_same(config.to_json(sort_keys=True), 'config')
  writers.check_writable(workdir)
  with workdir_lock.hold(workdir), interrupts.StopSignals(
      'start-up, before any training step') as stop:
    return _train_and_evaluate(config, workdir, callbacks, stop)


def _train_and_evaluate(config: ml_collections.ConfigDict,
                        workdir: epath.Path, callbacks: Sequence[Callback],
                        stop: interrupts.StopSignals) -> dict[str, Any]:
  """`train_and_evaluate` once its arguments are checked, under `stop`."""
  mesh = sharding.make_mesh()
  data_sharding = sharding.data_sharding(mesh)
  replicated = sharding.replicated(mesh)

  # Data first: a bad data folder or eval size fails before the workdir gets
  # a checkpoints folder.
  datasets = pipeline.load_datasets(config.data)
  eval_set = pipeline.make_eval_set(datasets, config.eval.num_pairs,
                                          config.eval.pairing_seed)
  # Placed on the mesh first, so that a restore reads into the mesh's
  # layout: with several processes, no array then moves between hosts.
  state = sharding.put(train_state.create_train_state(config), replicated)
  manager = checkpoints.create_manager(
      workdir, max_to_keep=config.checkpoint.max_to_keep)
  if manager.latest_step() is not None:
    state = checkpoints.restore(manager, state)
    logging.info('Resuming from the checkpoint at step %d.', int(state.step))
  elif config.init_from:
    # Only a fresh run: a resumed one already holds the weights it went on from.
    state = train_state.init_from(state, config.init_from)
    logging.info('Starting from the weights in %s.', config.init_from)
  # config.json describes the latest checkpoint: a fresh run writes it now; a
  # resumed run with a changed config writes it with its first checkpoint, so
  # a run that fails before saving leaves the old one in place.
  config_pending = distributed.is_primary()  # Process 0 writes the files.
  if config_pending and not (workdir / config_io.CONFIG_FILE).exists():
    config_io.save(config, workdir)
    config_pending = False
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  logging.info('Model %s: %.2f M parameters; %d device(s).', config.model.name,
               num_params / 1e6, mesh.size)

  pool = pipeline.make_train_pool(
      datasets, replicated, num_pairs=config.data.train_pairs,
      pairing_seed=config.seed)
  del datasets
  step_fn = steps.make_step_fn(config, data_sharding)
  schedule = optimizer.make_schedule(config)
  eval_fn = functools.partial(
      evaluate.per_image_metrics, eval_set=eval_set,
      batch_size=config.eval.batch_size, sharding=data_sharding)

  step = int(state.step)
  # Losses of the steps since the last log that an interrupted run left.
  history = writers.load_pending_metrics(workdir, step)
  writer = writers.open_writer(workdir)
  # A live bar on a terminal only; metrics.jsonl gets the numbers either way.
  progress = tqdm.tqdm(total=config.num_train_steps, initial=step, unit='step',
                       disable=not (sys.stderr.isatty()
                                    and distributed.is_primary()),
                       dynamic_ncols=True)

  def save(step: int) -> None:
    nonlocal config_pending
    # Never save a NaN: neither a loss nor the parameters it led to.
    _check_finite(jax.device_get(history), manager)
    _check_state_finite(state, step, manager)
    checkpoints.save(manager, step, state)
    for callback in callbacks:  # While the files are being written.
      callback('save', step)
    # Finish writing before training on: a kill then loses at most one
    # save interval (the host copy is taken already; the wait is the I/O).
    checkpoints.wait(manager)
    writer.flush()  # In a bucket: the metrics that go with the checkpoint.
    if config_pending:
      config_io.save(config, workdir)
      config_pending = False

  timer = run_length.StepTimer(step, config.num_train_steps)
  store_lost = False
  try:
    interval_start, interval_steps = time.perf_counter(), 0
    with stop.deferred():
      while step < config.num_train_steps:
        state, metrics = step_fn(state, pool)
        step += 1
        if distributed.is_primary():
          timer.after_step(step, metrics)
        for callback in callbacks:
          callback('step', step)
        interval_steps += 1
        history.append((step, metrics))  # Device arrays: no host sync here.
        is_last = step == config.num_train_steps
        if step % config.log_every_steps == 0 or is_last:
          history = jax.device_get(history)
          _check_finite(history, manager)
          scalars = _mean_metrics(history)
          scalars['learning_rate'] = float(schedule(step - 1))
          scalars['images_per_sec'] = interval_steps * config.batch_size / (
              time.perf_counter() - interval_start)
          writer.write_scalars(step, scalars, kind='train')
          _report(progress, step, config.num_train_steps, scalars,
                  eval_set.pair.roles)
          history = []
          if distributed.is_primary():
            (workdir / writers.PENDING_METRICS_FILE).unlink(missing_ok=True)
          interval_start, interval_steps = time.perf_counter(), 0
        saved = step % config.checkpoint.every_steps == 0 or is_last
        if saved:
          save(step)
        if (config.eval.every_steps and step % config.eval.every_steps == 0
            and not is_last):
          for callback in callbacks:
            callback('eval', step)
          evaluate.periodic_eval(_inference_state(state), int(state.step),
                                 eval_fn, eval_set, config, writer)
          interval_start, interval_steps = time.perf_counter(), 0
        if _stop_now(stop, step, config):
          if not saved:
            save(step)
          history = jax.device_get(history)
          if distributed.is_primary():
            writers.save_pending_metrics(workdir, step, history)
          raise interrupts.Interrupted(
              stop.signum or signal.SIGTERM, f'interrupted at step {step}: '
              'saved a checkpoint; run the same command to resume')
    progress.close()
    checkpoints.wait(manager)
    try:
      record = evaluate.run_eval(_inference_state(state), int(state.step),
                                 eval_set, config, workdir, writer,
                                 data_sharding)
    except interrupts.Interrupted as e:
      raise interrupts.Interrupted(
          e.signum, f'interrupted during the final eval; the checkpoint of '
          f'step {step} is saved: run the same command to evaluate it '
          '(earlier eval outputs are unchanged)') from None
  except checkpoints.StoreLost:
    store_lost = True
    raise
  finally:
    progress.close()
    if store_lost:
      # Nothing more can reach the store, and orbax's threads still wait
      # on it: leave them (the process is ending), and the files unsent.
      pass
    else:
      writer.close()
      try:
        manager.wait_until_finished()  # Let a save in flight complete.
      except Exception:  # pylint: disable=broad-except
        pass  # Already reported by checkpoints.save/wait, or by the error above.
      manager.close()
  if distributed.is_primary():
    plots.loss_curves(writers.read_jsonl(workdir / writers.METRICS_FILE),
                      workdir / 'loss.png')
  return record


def _stop_now(stop: interrupts.StopSignals, step: int,
              config: ml_collections.ConfigDict) -> bool:
  """Whether the loop stops after `step` on a signal.

  One process stops at the first step after its signal. Several agree
  first (a collective, so they ask at the same steps: each log step), and
  stop together even if only one of them got the signal.
  """
  if distributed.process_count() == 1:
    return stop.requested
  return (step % config.log_every_steps == 0
          and distributed.any_process(stop.requested))


def _report(progress: tqdm.tqdm, step: int, total: int,
            scalars: dict[str, float], roles: tuple[str, str]) -> None:
  """Shows a log step on the progress bar, or as a log line without one
  (each source's MSE under its name, `sources.Pair.roles`)."""
  if progress.disable:
    logging.info('step %d/%d  loss %.5f  (%s %.5f, %s %.5f)  %.0f img/s',
                 step, total, scalars['loss'], roles[0], scalars['digit_mse'],
                 roles[1], scalars['image_mse'], scalars['images_per_sec'])
    return
  progress.set_postfix(loss=f'{scalars["loss"]:.5f}',
                       img_s=f'{scalars["images_per_sec"]:.0f}', refresh=False)
  progress.update(step - progress.n)
