"""Training: the train state, the pure train step and the training loop.

`train_and_evaluate(config, workdir)` is the whole job behind
``launch.py --mode=train``: it resumes from the latest checkpoint in
``workdir`` when there is one, trains to ``config.num_train_steps``, and
evaluates on the fixed eval pairs (`evaluate.run_eval`).

Training pairs are sampled inside the jitted step from uint8 images kept on
the device (`pipeline.TrainPool`); the per-step rng is
``fold_in(key(seed), step)``, so a resumed run draws exactly the pairs and
dropout masks the uninterrupted run would have drawn.
"""

import functools
import json
import pathlib
import signal
import sys
import time
from typing import Any, Callable, Sequence

from absl import logging
from flax.training import train_state
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
import ml_collections
import numpy as np
import flax.linen as nn
import optax
import tqdm

from mixae_jax import checkpoints
from mixae_jax import config_io
from mixae_jax import distributed
from mixae_jax import evaluate
from mixae_jax import inference
from mixae_jax import interrupts
from mixae_jax import metrics as metrics_lib
from mixae_jax import models
from mixae_jax import platform
from mixae_jax import plots
from mixae_jax import sharding
from mixae_jax import workdir_lock
from mixae_jax import writers
from mixae_jax.data import pipeline
from mixae_jax.data import preprocessing
from mixae_jax.errors import CheckpointError, NonFiniteLossError

# Called by the training loop as ``callback(event, step)``: event 'step' right
# after step `step` is dispatched (its computation may still be running),
# 'save' right after the checkpoint of `step` has started to be written,
# 'eval' just before a periodic eval after `step`. Tests pass one that kills
# or signals the process there.
Callback = Callable[[str, int], None]


class TrainState(train_state.TrainState):
  """Params, optimizer state, BatchNorm statistics and the run's rng key.

  ``ema_params`` is the exponential moving average of the parameters when
  ``config.optimizer.ema_decay`` > 0 (evaluation and export then use it), and
  ``{}`` otherwise.
  """
  batch_stats: Any
  ema_params: Any
  rng: jax.Array  # raw uint32 key data, so checkpoints hold plain arrays.


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning-rate schedule; decay length derives from num_train_steps."""
  opt = config.optimizer
  warmup = min(opt.warmup_steps, config.num_train_steps)
  if opt.schedule == 'constant':
    if not warmup:
      return optax.constant_schedule(opt.learning_rate)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, opt.learning_rate, warmup),
         optax.constant_schedule(opt.learning_rate)], [warmup])
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=opt.learning_rate, warmup_steps=warmup,
      decay_steps=max(config.num_train_steps, warmup + 1),
      end_value=opt.learning_rate * opt.final_lr_fraction)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam (AdamW when weight_decay > 0) or Muon, optionally with clipping.

  ``optimizer.name='muon'`` steps each convolution kernel with Muon (its
  momentum orthogonalised by Newton-Schulz iterations, the kernel read as a
  [kh * kw * in, out] matrix) and everything else with Adam
  (`_muon_kernels`); both follow the one learning-rate schedule.

  Equal settings give the same optimizer object: the train state holds it as
  static data, so runs of equal settings share one compiled train step.
  """
  opt = config.optimizer
  return _optimizer(config.num_train_steps, opt.learning_rate, opt.schedule,
                    opt.warmup_steps, opt.final_lr_fraction, opt.weight_decay,
                    opt.grad_clip_norm, opt.get('name', 'adam'))


@functools.lru_cache(maxsize=64)
def _optimizer(num_train_steps: int, learning_rate: float, schedule: str,
               warmup_steps: int, final_lr_fraction: float,
               weight_decay: float, grad_clip_norm: float, name: str = 'adam'
               ) -> optax.GradientTransformation:
  config = ml_collections.ConfigDict(dict(
      num_train_steps=num_train_steps, optimizer=dict(
          learning_rate=learning_rate, schedule=schedule,
          warmup_steps=warmup_steps, final_lr_fraction=final_lr_fraction)))
  lr = make_schedule(config)
  if name == 'muon':
    # consistent_rms=0.2 scales Muon's steps to Adam's typical RMS, so one
    # peak learning rate serves both parts (Liu et al. 2025). Weight decay,
    # if any, applies to the orthogonalised kernels only.
    tx = optax.contrib.muon(
        lr, weight_decay=weight_decay, consistent_rms=0.2,
        muon_weight_dimension_numbers=_muon_kernels)
  elif weight_decay:
    # Kernels only: decaying biases and normalisation scales only pulls the
    # network away from its normalised form.
    tx = optax.adamw(lr, weight_decay=weight_decay, mask=_is_kernel)
  else:
    tx = optax.adam(lr)
  if grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx


def _muon_kernels(params: Any) -> Any:
  """Which parameters Muon steps, and how it reads each as a matrix.

  The hidden convolution kernels [kh, kw, in, out], read as
  [kh * kw * in, out] matrices. The layers that touch the image, the
  input convolution and the decoders' output convolutions
  (`models.is_edge_layer`), and every bias, norm and vector are left to
  Adam, as Muon's authors advise. Chosen by the parameter's path, never by
  its shape: a shared decoder's output layer has 4 outputs, an input layer
  3 inputs.
  """
  kernel = optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2),
                                              output_axis=3)
  def spec(path, p):
    names = tuple(str(getattr(k, 'key', k)) for k in path)
    hidden = p.ndim == 4 and names[-1] == 'kernel' and not models.is_edge_layer(
        names[:-1])
    return kernel if hidden else None
  return jax.tree_util.tree_map_with_path(spec, params)


def _is_kernel(params: Any) -> Any:
  """True for the weight matrices and kernels (ndim > 1) of a parameter tree."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


@functools.partial(jax.jit, static_argnums=0)
def _init_variables(model: nn.Module, key: jax.Array) -> Any:
  """The model's initial variables; one compile per (equal) model."""
  size = preprocessing.IMAGE_SIZE
  return model.init({'params': key}, jnp.zeros((1, size, size, 3)),
                    train=False)


def create_train_state(config: ml_collections.ConfigDict,
                       model: nn.Module | None = None) -> TrainState:
  """A freshly initialised train state for `config` (seeded by config.seed).

  Args:
    config: the run's config.
    model: the network; by default `config.model` built with this backend's
      layer forms (`platform.layer_forms`), which share flax's parameters.
  """
  if model is None:
    model = models.create_model(config.model, config.get('dtype', 'float32'),
                                **platform.layer_forms())
  key = jax.random.key(config.seed)
  init_key, run_key = jax.random.split(key)
  variables = _init_variables(model, init_key)
  return TrainState.create(
      apply_fn=model.apply, params=variables['params'],
      tx=make_optimizer(config),
      batch_stats=variables.get('batch_stats', {}),
      # A copy: the train step donates the state, and one buffer cannot be
      # donated twice.
      ema_params=(jax.tree.map(jnp.copy, variables['params'])
                  if config.optimizer.get('ema_decay', 0.0) else {}),
      rng=jax.random.key_data(run_key))


def init_from(state: TrainState, source: str | pathlib.Path) -> TrainState:
  """Starts `state` from the weights of another run or a released model.

  The parameters and BatchNorm statistics come from the latest checkpoint in
  `source` (a run folder, or a release such as ``pretrained/dual``); the
  optimizer state, the step, and hence the learning-rate schedule start
  afresh, so a fine-tuning run gets its own warm-up and decay.

  Args:
    state: a freshly initialised state of this run's config.
    source: the folder to start from (``config.init_from``).

  Raises:
    CheckpointError: `source` has no checkpoint, or one of a different model.
  """
  where = f'config.init_from={str(source)!r}'
  wanted = ("name a run folder or a released model (e.g. pretrained/dual), "
            "or '' to start from random weights")
  folder = pathlib.Path(source)
  if not folder.exists():
    raise CheckpointError(f'{where}: {folder} does not exist; {wanted}')
  if not folder.is_dir():
    raise CheckpointError(f'{where}: {folder} is a file, not a run folder; '
                          f'{wanted}')
  if not checkpoints.checkpoint_dir(source).is_dir():
    raise CheckpointError(
        f'{where}: {folder / checkpoints.CHECKPOINT_DIR} does not exist, so '
        f'{folder} holds no model; {wanted}')
  manager = checkpoints.create_manager(source, read_only=True)
  try:
    restored = checkpoints.restore_variables(
        manager, {'params': state.params, 'batch_stats': state.batch_stats})
  except CheckpointError as e:
    raise CheckpointError(f'{where} cannot start this model: {e}') from None
  finally:
    manager.close()
  params = restored['params']
  return state.replace(
      params=params, batch_stats=restored['batch_stats'],
      ema_params=jax.tree.map(jnp.copy, params) if state.ema_params else {})


def task_io(task: str, batch: preprocessing.Mixtures
            ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The network input and the two outputs' targets for a training task.

  'separate' is this project's task: mixture in, (digit, image) out. The
  other two are the reference designs' tasks: 'reconstruct_mixture' (an
  autoencoder of the mixture itself, references 001/002) and
  'reconstruct_digit' (a plain MNIST autoencoder, reference 003).
  """
  if task == 'separate':
    return batch.mixture, batch.digit, batch.cifar
  if task == 'reconstruct_mixture':
    return batch.mixture, batch.mixture, batch.mixture
  if task == 'reconstruct_digit':
    return batch.digit, batch.digit, batch.digit
  raise ValueError(f'unknown task {task!r}; use one of {config_io.TASKS}')


def train_step(state: TrainState, batch: preprocessing.Mixtures, rng: jax.Array,
               digit_weight: float = 1.0, image_weight: float = 1.0,
               task: str = 'separate',
               ssim_weight: float | tuple[float, float] = 0.0,
               ema_decay: float = 0.0, pixel_loss: str = 'mse'
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam step on the weighted loss of the two outputs.

  Each output's loss is ``P + w * (1 - SSIM)`` (SSIM as in the eval:
  dm-pix, mean over images, ``w`` its `ssim_weight`), where P is its MSE
  (`pixel_term`); the step's loss is ``digit_weight *`` the digit's plus
  ``image_weight *`` the image's.

  Pure: the same (state, batch, rng) always gives the same result.

  Args:
    state: the train state.
    batch: mixtures with their true sources.
    rng: key for dropout.
    digit_weight: weight of the digit output's loss.
    image_weight: weight of the image output's loss.
    task: what the network learns (see `task_io`); 'separate' by default.
    ssim_weight: weight of the (1 - SSIM) term, one for both outputs or a
      (digit, image) pair; 0 for both leaves it out.
    ema_decay: decay of the parameters' moving average (`ema_update`); 0: none.
    pixel_loss: 'mse', or 'psnr' or 'l1' to follow the gradient of the
      mean per-image PSNR or of the mean absolute error (`pixel_term`).

  Returns:
    The new state, and scalar metrics: loss, digit_mse, image_mse, grad_norm,
    and with an ssim_weight > 0 also digit_ssim and image_ssim.
  """
  inputs, digit_target, image_target = task_io(task, batch)
  digit_ssim_weight, image_ssim_weight = (
      ssim_weight if isinstance(ssim_weight, tuple) else (ssim_weight,) * 2)

  def loss_fn(params):
    variables = {'params': params, 'batch_stats': state.batch_stats}
    (digit, image), updates = state.apply_fn(
        variables, inputs, train=True, rngs={'dropout': rng},
        mutable=['batch_stats'])
    terms = {'digit_mse': jnp.mean(jnp.square(digit - digit_target)),
             'image_mse': jnp.mean(jnp.square(image - image_target))}
    digit_loss = pixel_term(digit - digit_target, pixel_loss)
    image_loss = pixel_term(image - image_target, pixel_loss)
    # Static: without a weight, no SSIM is computed at all.
    if digit_ssim_weight or image_ssim_weight:
      terms['digit_ssim'] = jnp.mean(metrics_lib.ssim(digit, digit_target))
      terms['image_ssim'] = jnp.mean(metrics_lib.ssim(image, image_target))
      digit_loss += digit_ssim_weight * (1.0 - terms['digit_ssim'])
      image_loss += image_ssim_weight * (1.0 - terms['image_ssim'])
    loss = digit_weight * digit_loss + image_weight * image_loss
    return loss, (updates, loss, terms)

  grads, (updates, loss, terms) = jax.grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(
      grads=grads, batch_stats=updates.get('batch_stats', state.batch_stats))
  if ema_decay:  # Static, like ssim_weight.
    new_state = new_state.replace(ema_params=ema_update(
        state.ema_params, new_state.params, new_state.step, ema_decay))
  metrics = {'loss': loss, **terms, 'grad_norm': optax.tree.norm(grads)}
  return new_state, metrics


def pixel_term(error: jax.Array, kind: str) -> jax.Array:
  """The pixel term of the loss from the errors [N, H, W, C] of a batch.

  'mse': their mean square. The other kinds change only the direction of the
  gradient: their value is the MSE's (scaled by a constant, no gradient), so
  the SSIM weight keeps its meaning beside any of them (docs/levers.md).
  'psnr': the protocol scores the *mean per-image PSNR*, whose gradient is
  that of ``-mean(log MSE_i)``: every image counts by its relative error, so
  the easy, already good images are not drowned out by the hard ones as
  under the plain mean. 'l1': the mean absolute error, whose gradient does
  not fade as a pixel's error shrinks (Zhao et al. 2017).
  """
  mse = jnp.mean(jnp.square(error), axis=tuple(range(1, error.ndim)))
  mean = jnp.mean(mse)
  if kind == 'mse':
    return mean
  if kind == 'psnr':
    # Each ratio is 1 in value; its gradient is grad(MSE_i) / MSE_i.
    ratio = mse / jax.lax.stop_gradient(mse + 1e-10)
    return jax.lax.stop_gradient(mean) * jnp.mean(ratio)
  if kind == 'l1':
    mae = jnp.mean(jnp.abs(error))
    return jax.lax.stop_gradient(mean / (mae + 1e-10)) * mae
  raise ValueError(f'unknown pixel loss {kind!r}')


def ssim_weights(config: ml_collections.ConfigDict) -> tuple[float, float]:
  """The (digit, image) weights of the (1 - SSIM) loss terms.

  ``loss.ssim_weight`` weighs both; ``loss.digit_ssim_weight`` or
  ``loss.image_ssim_weight``, where a config sets one (not None), replaces
  it for that output. Configs saved before these keys existed give the same
  weight to both.
  """
  both = float(config.loss.get('ssim_weight', 0.0))
  return tuple(both if config.loss.get(key) is None else float(config.loss[key])
               for key in ('digit_ssim_weight', 'image_ssim_weight'))


def ema_update(ema: Any, params: Any, step: jax.Array, decay: float) -> Any:
  """One step of the parameters' exponential moving average.

  The decay ramps up as ``min(decay, (1 + step) / (10 + step))``, so that the
  average is not dominated by the random initialisation early in training.
  """
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def inference_state(state: TrainState) -> inference.InferenceState:
  """The model a train state evaluates as: its EMA parameters, if it has them."""
  variables = checkpoints.model_variables(state)
  return inference.InferenceState(apply_fn=state.apply_fn,
                                 params=variables['params'],
                                 batch_stats=variables['batch_stats'])


@functools.partial(
    jax.jit, donate_argnums=0,
    static_argnames=('batch_size', 'data_sharding', 'digit_weight',
                     'image_weight', 'task', 'ssim_weight', 'ema_decay',
                     'pixel_loss'))
def train_step_on_pool(state: TrainState, pool: pipeline.TrainPool, *,
                       batch_size: int,
                       data_sharding: NamedSharding | None = None,
                       digit_weight: float = 1.0, image_weight: float = 1.0,
                       task: str = 'separate',
                       ssim_weight: float | tuple[float, float] = 0.0,
                       ema_decay: float = 0.0, pixel_loss: str = 'mse'
                       ) -> tuple[TrainState, dict[str, jax.Array]]:
  """Draws a fresh batch from the device-resident pool and takes a step.

  The step's key is ``fold_in(run key, step)``: the pairs and dropout masks
  depend only on the seed and the step number, not on restarts or devices.
  With `data_sharding`, the batch is split over the mesh's 'data' axis and
  the parameters stay replicated; XLA inserts the gradient all-reduce and the
  cross-device BatchNorm statistics.
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  sample_key, dropout_key = jax.random.split(key)
  batch = pipeline.sample_batch(pool, sample_key, batch_size)
  if data_sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, data_sharding)
  new_state, metrics = train_step(state, batch, dropout_key, digit_weight,
                                  image_weight, task, ssim_weight, ema_decay,
                                  pixel_loss)
  if data_sharding is not None:
    replicated = sharding.replicated(data_sharding.mesh)
    new_state = jax.lax.with_sharding_constraint(new_state, replicated)
  return new_state, metrics


def make_step_fn(config: ml_collections.ConfigDict,
                 data_sharding: NamedSharding | None = None
                 ) -> Callable[[TrainState, pipeline.TrainPool],
                               tuple[TrainState, dict[str, jax.Array]]]:
  """``step_fn(state, pool)``: `train_step_on_pool` with the config's settings.

  Args:
    config: the run's config.
    data_sharding: the batch's sharding over a mesh of more than one device;
      None on one device.
  """
  if data_sharding is not None and data_sharding.mesh.size == 1:
    data_sharding = None
  return functools.partial(
      train_step_on_pool, batch_size=config.batch_size,
      data_sharding=data_sharding,
      digit_weight=float(config.loss.digit_weight),
      image_weight=float(config.loss.image_weight),
      task=config.get('task', 'separate'),
      ssim_weight=ssim_weights(config),
      ema_decay=float(config.optimizer.get('ema_decay', 0.0)),
      pixel_loss=config.loss.get('pixel', 'mse'))


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


# Where an interrupted run keeps the losses of the steps since its last log,
# so that the resumed run logs the same means as an uninterrupted one.
PENDING_METRICS_FILE = 'train_metrics_pending.json'


def _save_pending_metrics(workdir: pathlib.Path, step: int,
                          history: list[tuple[int, dict[str, Any]]]) -> None:
  writers.write_json(workdir / PENDING_METRICS_FILE, {
      'step': step, 'history': [[s, {k: float(v) for k, v in m.items()}]
                                for s, m in history]})


def _load_pending_metrics(workdir: pathlib.Path, step: int
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


def _mean_metrics(history: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
  return {k: float(np.mean([m[k] for _, m in history])) for k in history[0][1]}


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | pathlib.Path,
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
  workdir = pathlib.Path(workdir)
  # With several processes: one run, so one folder and one config for all.
  distributed.check_same(str(workdir.resolve()), '--workdir')
  distributed.check_same(config.to_json(sort_keys=True), 'config')
  writers.check_writable(workdir)
  with workdir_lock.hold(workdir), interrupts.StopSignals(
      'start-up, before any training step') as stop:
    return _train_and_evaluate(config, workdir, callbacks, stop)


def _train_and_evaluate(config: ml_collections.ConfigDict,
                        workdir: pathlib.Path, callbacks: Sequence[Callback],
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
  state = jax.device_put(create_train_state(config), replicated)
  manager = checkpoints.create_manager(
      workdir, max_to_keep=config.checkpoint.max_to_keep)
  if manager.latest_step() is not None:
    state = checkpoints.restore(manager, state)
    logging.info('Resuming from the checkpoint at step %d.', int(state.step))
  elif config.get('init_from', ''):
    # Only a fresh run: a resumed one already holds the weights it went on from.
    state = init_from(state, config.init_from)
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
      datasets, replicated, num_pairs=config.data.get('train_pairs', 0),
      pairing_seed=config.seed)
  del datasets
  step_fn = make_step_fn(config, data_sharding)
  schedule = make_schedule(config)
  eval_fn = functools.partial(
      evaluate.per_image_metrics, eval_set=eval_set,
      batch_size=config.eval.batch_size, sharding=data_sharding)

  step = int(state.step)
  # Losses of the steps since the last log that an interrupted run left.
  history = _load_pending_metrics(workdir, step)
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
    if config_pending:
      config_io.save(config, workdir)
      config_pending = False

  try:
    interval_start, interval_steps = time.perf_counter(), 0
    with stop.deferred():
      while step < config.num_train_steps:
        state, metrics = step_fn(state, pool)
        step += 1
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
          _report(progress, step, config.num_train_steps, scalars)
          history = []
          if distributed.is_primary():
            (workdir / PENDING_METRICS_FILE).unlink(missing_ok=True)
          interval_start, interval_steps = time.perf_counter(), 0
        saved = step % config.checkpoint.every_steps == 0 or is_last
        if saved:
          save(step)
        if (config.eval.every_steps and step % config.eval.every_steps == 0
            and not is_last):
          for callback in callbacks:
            callback('eval', step)
          _periodic_eval(inference_state(state), int(state.step), eval_fn,
                         eval_set, config, writer)
          interval_start, interval_steps = time.perf_counter(), 0
        if _stop_now(stop, step, config):
          if not saved:
            save(step)
          history = jax.device_get(history)
          if distributed.is_primary():
            _save_pending_metrics(workdir, step, history)
          raise interrupts.Interrupted(
              stop.signum or signal.SIGTERM, f'interrupted at step {step}: '
              'saved a checkpoint; run the same command to resume')
    progress.close()
    checkpoints.wait(manager)
    try:
      record = evaluate.run_eval(inference_state(state), int(state.step),
                                 eval_set, config, workdir, writer,
                                 data_sharding)
    except interrupts.Interrupted as e:
      raise interrupts.Interrupted(
          e.signum, f'interrupted during the final eval; the checkpoint of '
          f'step {step} is saved: run the same command to evaluate it '
          '(earlier eval outputs are unchanged)') from None
  finally:
    progress.close()
    writer.close()
    try:
      manager.wait_until_finished()  # Let a save in flight complete.
    except Exception:  # pylint: disable=broad-except
      pass  # Already reported by checkpoints.save/wait, or by the error above.
    manager.close()
  if distributed.is_primary():
    plots.loss_curves(writers.read_jsonl(workdir / 'metrics.jsonl'),
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
            scalars: dict[str, float]) -> None:
  """Shows a log step on the progress bar, or as a log line without one."""
  if progress.disable:
    logging.info('step %d/%d  loss %.5f  (digit %.5f, image %.5f)  %.0f img/s',
                 step, total, scalars['loss'], scalars['digit_mse'],
                 scalars['image_mse'], scalars['images_per_sec'])
    return
  progress.set_postfix(loss=f'{scalars["loss"]:.5f}',
                       img_s=f'{scalars["images_per_sec"]:.0f}', refresh=False)
  progress.update(step - progress.n)


def _periodic_eval(state: Any, step: int, eval_fn: Any,
                   eval_set: pipeline.EvalSet,
                   config: ml_collections.ConfigDict,
                   writer: writers.MetricWriter) -> None:
  """A cheaper eval during training: the first periodic_num_pairs pairs."""
  n = min(config.eval.periodic_num_pairs or config.eval.num_pairs,
          config.eval.num_pairs)
  record = evaluate.summary(eval_fn(state, num_pairs=n), step,
                            config.eval.pairing_seed)
  writer.write_scalars(step, record, kind='eval')
  samples = evaluate.predict_samples(state, eval_set,
                                     np.arange(evaluate.NUM_SAMPLE_ROWS))
  writer.write_image(step, 'eval/samples', plots.sample_grid(samples))
  logging.info('eval at step %d on %d pairs:\n%s', step, n,
               evaluate.format_summary(record))
