"""Training: the loss falls, checkpoints round-trip, resume is exact, NaN stops."""

import dataclasses
import functools
import json
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import tiny_config
from mixae_jax import checkpoints, checksums, evaluate, losses, model_files, steps
from mixae_jax import train, writers
from mixae_jax.data import pipeline
from mixae_jax.errors import CheckpointError, ConfigError, NonFiniteLossError
from mixae_jax.losses import LossSettings
from mixae_jax.train_state import create_train_state, init_from


def _trees_equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), a, b)))


def _variables(state):
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _one_batch_to_overfit(data_dir, optimizer='adam'):
  """A small model's fresh state, one batch of 16 to fit it to, and its
  loss settings."""
  config = tiny_config(data_dir, **{'model.widths': (8, 16),
                                    'optimizer.name': optimizer,
                                    'optimizer.schedule': 'constant',
                                    'optimizer.warmup_steps': 0,
                                    'optimizer.learning_rate': 3e-3})
  ds = pipeline.load_datasets(config.data)
  batch = pipeline.sample_batch(pipeline.make_train_pool(ds),
                                      jax.random.key(0), 16)
  return create_train_state(config), batch, LossSettings.from_config(config)


def _step(settings, **changes):
  """`steps.train_step`, jitted, with these loss settings (not donated)."""
  return jax.jit(functools.partial(
      steps.train_step, settings=dataclasses.replace(settings, **changes)))


@pytest.mark.parametrize('optimizer', ['adam', 'muon'])
def test_the_step_is_pure_and_the_loss_falls_on_one_batch(data_dir, optimizer):
  state, batch, settings = _one_batch_to_overfit(data_dir, optimizer)
  step = _step(settings)
  # Pure: the same state, batch and key give the same step, bit for bit.
  (a, ma), (b, mb) = (step(state, batch, jax.random.key(0)) for _ in range(2))
  assert float(ma['loss']) == float(mb['loss'])
  assert _trees_equal(a.params, b.params) and _trees_equal(a.opt_state,
                                                           b.opt_state)
  history = []
  for i in range(40):
    state, metrics = step(state, batch, jax.random.key(i))
    history.append(float(metrics['loss']))
  assert history[-1] < 0.5 * history[0], history
  assert int(state.step) == 40


def test_ssim_term_is_in_the_loss_and_raises_ssim(data_dir):
  state, batch, settings = _one_batch_to_overfit(data_dir)
  step = _step(settings, digit_weight=0.5, ssim_weight=0.2)
  history = []
  for i in range(30):
    state, m = step(state, batch, jax.random.key(i))
    history.append({k: float(v) for k, v in m.items()})
  first, last = history[0], history[-1]
  for m in (first, last):
    assert m['loss'] == pytest.approx(
        0.5 * (m['digit_mse'] + 0.2 * (1 - m['digit_ssim']))
        + m['image_mse'] + 0.2 * (1 - m['image_ssim']), rel=1e-5)
  assert last['image_ssim'] > first['image_ssim'] + 0.05, (first, last)
  assert last['loss'] < 0.7 * first['loss']
  # Without the term, no SSIM is computed or reported.
  _, plain = _step(settings, ssim_weight=0.0)(state, batch, jax.random.key(0))
  assert 'digit_ssim' not in plain


def test_a_bfloat16_shared_decoder_run_with_the_l1_loss_trains_and_restores(
    data_dir, tmp_path):
  """The options a user may choose beside the default's, together, end to end."""
  from mixae_jax.inference import Separator  # pylint: disable=g-import-not-at-top
  config = tiny_config(data_dir, num_train_steps=4, dtype='bfloat16',
                       **{'model.decoders': 'shared', 'loss.pixel': 'l1',
                          'eval.every_steps': 0, 'checkpoint.every_steps': 2,
                          'log_every_steps': 1})
  record = train.train_and_evaluate(config, tmp_path)
  logged = [r['loss'] for r in writers.read_jsonl(tmp_path / 'metrics.jsonl')
            if r['kind'] == 'train']
  assert len(logged) == 4 and np.all(np.isfinite(logged))
  assert record['cifar10']['psnr'] > record['baseline']['cifar10']['psnr']
  state = checkpoints.restore(
      checkpoints.create_manager(tmp_path, read_only=True),
      create_train_state(config))
  assert int(state.step) == 4
  # Parameters are kept in float32, whatever the computation's dtype.
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {np.dtype('float32')}
  # The eval mode restores it (in bf16) and reproduces the final metrics;
  # the Separator restores it in float32.
  again = evaluate.evaluate_checkpoint(config, tmp_path, tmp_path / 'again')
  assert again['cifar10']['psnr'] == pytest.approx(record['cifar10']['psnr'])
  separator = Separator.restore(tmp_path)
  digit, image = separator(np.full((2, 32, 32, 3), 0.5, np.float32))
  assert digit.dtype == image.dtype == np.float32


def test_run_writes_every_output(trained_run):
  config, workdir, record = trained_run
  for name in ('config.json', 'metrics.jsonl', 'loss.png', 'eval/metrics.json',
               'eval/samples.png'):
    assert (workdir / name).is_file(), name
  assert list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  saved = json.loads((workdir / 'eval' / 'metrics.json').read_text())
  assert saved == json.loads(json.dumps(record))
  assert saved['step'] == 6 and saved['num_pairs'] == 40
  assert saved['pairing_seed'] == 0
  for source in ('mnist', 'cifar10'):
    assert set(saved[source]) == {'psnr', 'ssim', 'mse'}
    assert set(saved['baseline'][source]) == {'psnr', 'ssim', 'mse'}
  logs = writers.read_jsonl(workdir / 'metrics.jsonl')
  train_logs = [r for r in logs if r['kind'] == 'train']
  assert [r['step'] for r in train_logs] == [2, 4, 6]
  for r in train_logs:
    assert {'loss', 'learning_rate', 'images_per_sec'} <= set(r)
  evals = [r for r in logs if r['kind'] == 'eval']
  assert [(r['step'], r['num_pairs']) for r in evals] == [(3, 16), (6, 40)]
  assert checkpoints.create_manager(workdir, read_only=True).all_steps() == [3, 6]


def test_eval_mode_reproduces_the_end_of_training_metrics(trained_run,
                                                           tmp_path):
  config, workdir, record = trained_run
  again = evaluate.evaluate_checkpoint(config, workdir, tmp_path)
  assert again == record


def test_checkpoint_round_trip(data_dir, tmp_path):
  config = tiny_config(data_dir, **{'model.name': 'seed004'})
  state = create_train_state(config)
  state = state.replace(step=jnp.asarray(7), batch_stats=jax.tree.map(
      lambda x: x + 1.5, state.batch_stats))
  manager = checkpoints.create_manager(tmp_path)
  checkpoints.save(manager, 7, state)
  manager.wait_until_finished()
  restored = checkpoints.restore(manager, create_train_state(config))
  assert int(restored.step) == 7
  assert _trees_equal(restored.params, state.params)
  assert _trees_equal(restored.batch_stats, state.batch_stats)
  assert _trees_equal(restored.opt_state, state.opt_state)
  assert _trees_equal(restored.rng, state.rng)


@flax.struct.dataclass
class _TrainStateWithEma:
  """A train state as saved before its (empty) ema_params field was removed."""
  step: Any
  params: Any
  opt_state: Any
  batch_stats: Any
  ema_params: Any
  rng: Any


def test_a_checkpoint_from_before_a_field_was_removed_still_restores(
    data_dir, tmp_path):
  config = tiny_config(data_dir)
  state = create_train_state(config).replace(step=jnp.asarray(5))
  old = _TrainStateWithEma(ema_params={}, **{f: getattr(state, f) for f in (
      'step', 'params', 'opt_state', 'batch_stats', 'rng')})
  # As that code saved it: one CRC over the whole tree, in its field order.
  manager = checkpoints.create_manager(tmp_path)
  manager.save(5, args=ocp.args.StandardSave(old), force=True,
               custom_metadata={'crc32': checksums.fingerprint(old)})
  manager.wait_until_finished()
  restored = checkpoints.restore(manager, create_train_state(config))
  assert int(restored.step) == 5
  assert _trees_equal(restored.params, state.params)
  assert _trees_equal(restored.opt_state, state.opt_state)
  # And a damaged one of that time is still refused.
  damaged = old.replace(params=jax.tree.map(lambda x: x + 1, old.params))
  manager.save(6, args=ocp.args.StandardSave(damaged), force=True,
               custom_metadata={'crc32': checksums.fingerprint(old)})
  manager.wait_until_finished()
  with pytest.raises(CheckpointError, match='do not match the checksum'):
    checkpoints.restore(manager, create_train_state(config), 6)


def test_checkpoints_follow_any_state_tree_and_check_each_field(tmp_path):
  # Generic: a dict state gains a field that holds nothing yet (a state
  # grown since its checkpoints were written), and the checksums are per
  # field, so a damaged field is named.
  manager = checkpoints.create_manager(tmp_path)
  saved = {'step': jnp.asarray(1), 'weights': {'w': jnp.arange(4.0)}}
  checkpoints.save(manager, 1, saved)
  checkpoints.wait(manager)
  restored = checkpoints.restore(manager, {**saved, 'extra': {}})
  assert restored['extra'] == {}
  assert _trees_equal(restored['weights'], saved['weights'])
  damaged = {**saved, 'weights': {'w': jnp.arange(4.0) + 1}}
  manager.save(2, args=ocp.args.StandardSave(damaged), force=True,
               custom_metadata={
                   checksums.CRC_KEY: checksums.field_fingerprints(saved)})
  manager.wait_until_finished()
  with pytest.raises(CheckpointError, match='its weights arrays do not match'):
    checkpoints.restore(manager, saved, 2)


def test_resume_continues_exactly_where_it_stopped(data_dir, tmp_path):
  # A constant schedule, so the 4-step and 8-step runs share learning rates.
  over = {'optimizer.schedule': 'constant', 'eval.every_steps': 0,
          'checkpoint.every_steps': 4, 'log_every_steps': 4}
  straight = tiny_config(data_dir, num_train_steps=8, **over)
  first = train.train_and_evaluate(straight, tmp_path / 'straight')
  interrupted = tiny_config(data_dir, num_train_steps=4, **over)
  train.train_and_evaluate(interrupted, tmp_path / 'resumed')
  resumed = train.train_and_evaluate(straight, tmp_path / 'resumed')
  assert resumed == first
  logs = writers.read_jsonl(tmp_path / 'resumed' / 'metrics.jsonl')
  straight_logs = writers.read_jsonl(tmp_path / 'straight' / 'metrics.jsonl')
  loss = lambda records: [(r['step'], r['loss']) for r in records if r['kind'] == 'train']
  assert loss(logs) == loss(straight_logs)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
  good = tiny_config(data_dir, num_train_steps=3, **{'eval.every_steps': 0})
  train.train_and_evaluate(good, tmp_path)
  saved = (tmp_path / 'checkpoints' / '3').stat().st_mtime_ns
  # A learning rate no network survives: the loss becomes NaN or inf.
  bad = tiny_config(data_dir, num_train_steps=12, **{
      'eval.every_steps': 0, 'optimizer.learning_rate': 1e30,
      'optimizer.schedule': 'constant'})
  with pytest.raises(NonFiniteLossError, match=r'loss became (nan|inf) at step \d+'
                     r'.*last good checkpoint \(step 3\) is kept'):
    train.train_and_evaluate(bad, tmp_path)
  manager = checkpoints.create_manager(tmp_path, read_only=True)
  assert manager.all_steps() == [3]
  assert (tmp_path / 'checkpoints' / '3').stat().st_mtime_ns == saved
  restored = checkpoints.restore(manager, create_train_state(good))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(restored.params))


def test_non_finite_parameters_are_never_saved(data_dir, tmp_path):
  # An infinite learning rate: step 1's loss, computed before its update, is
  # finite, and the parameters it leaves are not. The save of step 1 must
  # refuse them, not write them.
  bad = tiny_config(data_dir, num_train_steps=2, log_every_steps=2, **{
      'eval.every_steps': 0, 'checkpoint.every_steps': 1,
      'optimizer.learning_rate': 1e39, 'optimizer.warmup_steps': 0,
      'optimizer.schedule': 'constant'})
  with pytest.raises(NonFiniteLossError, match=r'parameters became non-finite '
                     r'\(NaN or inf\) at step 1.*no checkpoint had been saved'):
    train.train_and_evaluate(bad, tmp_path)
  assert checkpoints.create_manager(tmp_path, read_only=True).all_steps() == []


def test_restoring_another_architecture_is_a_clear_error(trained_run):
  config, workdir, _ = trained_run
  other = config.copy_and_resolve_references()
  other.model.widths = (8, 16)
  manager = checkpoints.create_manager(workdir, read_only=True)
  # The first path that differs, in sorted order (the tiny run uses the
  # default BatchNorm, whose parameters sort before the kernel's).
  with pytest.raises(CheckpointError, match=r'saved by a different model or '
                     r'config: params/ConvBlock_0/BatchNorm_0/bias is \(4,\) '
                     r'float32 in the checkpoint but \(8,\) float32 in the '
                     r'configured model'):
    checkpoints.restore(manager, create_train_state(other))


def test_init_from_starts_from_a_release_with_a_fresh_optimizer(trained_run,
                                                                 tmp_path):
  from mixae_jax.apps import export as release  # pylint: disable=g-import-not-at-top
  config, workdir, _ = trained_run
  release.export(workdir, tmp_path / 'release', dtype='float16')
  source = model_files.read_variables(tmp_path / 'release',
                                      _variables(create_train_state(config)))
  fresh = create_train_state(config)
  state = init_from(fresh, tmp_path / 'release')
  assert _trees_equal(state.params, source['params'])
  assert _trees_equal(state.batch_stats, source['batch_stats'])
  assert not _trees_equal(state.params, fresh.params)
  # The optimizer and the step start afresh: a new warm-up and decay.
  assert int(state.step) == 0
  assert _trees_equal(state.opt_state, fresh.opt_state)


def test_a_run_with_init_from_goes_on_from_the_source_weights(trained_run,
                                                              tmp_path):
  config, workdir, _ = trained_run
  logs = lambda run: [r for r in writers.read_jsonl(run / 'metrics.jsonl')
                      if r['kind'] == 'train']
  # A learning rate too small to move the weights: what the run saves is what
  # it started from.
  tuned = tiny_config(config.data.dir, num_train_steps=2, log_every_steps=1,
                      init_from=str(workdir), **{'eval.every_steps': 0,
                                                 'optimizer.learning_rate': 1e-20})
  train.train_and_evaluate(tuned, tmp_path / 'tuned')
  def saved_params(run, cfg):
    manager = checkpoints.create_manager(run, read_only=True)
    return checkpoints.restore(manager, create_train_state(cfg)).params
  start, end = saved_params(workdir, config), saved_params(tmp_path / 'tuned', tuned)
  assert all(jax.tree.leaves(jax.tree.map(
      lambda a, b: np.allclose(a, b, atol=1e-6), start, end)))
  assert not _trees_equal(end, create_train_state(tuned).params)
  # A workdir with checkpoints of its own resumes them; init_from is not read
  # again (here it names a folder that no longer exists).
  gone = tiny_config(config.data.dir, num_train_steps=3, log_every_steps=1,
                     init_from=str(tmp_path / 'gone'), **{'eval.every_steps': 0})
  train.train_and_evaluate(gone, tmp_path / 'tuned')
  assert [r['step'] for r in logs(tmp_path / 'tuned')] == [1, 2, 3]


def test_init_from_a_missing_or_different_model_is_a_clear_error(trained_run,
                                                                  tmp_path):
  config, workdir, _ = trained_run
  state = create_train_state(config)
  with pytest.raises(CheckpointError, match=r"config.init_from='.*nowhere': "
                     r'.*nowhere does not exist; name a run folder'):
    init_from(state, tmp_path / 'nowhere')
  (tmp_path / 'weights.msgpack').write_bytes(b'x')
  with pytest.raises(CheckpointError, match=r'weights.msgpack is a file, not a '
                     'run folder; name a run folder'):
    init_from(state, tmp_path / 'weights.msgpack')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(CheckpointError, match=r'empty holds no model \(neither '
                     r'model.safetensors nor checkpoints/\); name a run folder'):
    init_from(state, tmp_path / 'empty')
  other = config.copy_and_resolve_references()
  other.model.widths = (8, 16)
  with pytest.raises(CheckpointError, match=r'config.init_from=.* cannot start '
                     r'this model: .*saved by a different model or config'):
    init_from(create_train_state(other), workdir)


def test_eval_on_an_empty_workdir_is_a_clear_error(data_dir, tmp_path):
  with pytest.raises(CheckpointError, match='no checkpoints in'):
    evaluate.evaluate_checkpoint(tiny_config(data_dir), tmp_path)


@pytest.mark.parametrize('key, value, message', [
    ('batch_size', 0, 'batch_size=0 must be an integer >= 1'),
    ('batch_size', -8, 'batch_size=-8 must be'),
    ('eval.num_pairs', 0, 'eval.num_pairs=0'),
    ('optimizer.schedule', 'linear', "optimizer.schedule='linear' is unknown"),
    ('optimizer.learning_rate', 0.0, 'learning_rate=0.0 must be > 0'),
    ('optimizer.name', 'sgd', "optimizer.name='sgd' is unknown; use one of"),
    ('task', 'denoise', "task='denoise' is unknown; use one of"),
    ('data.train_pairs', -1, 'data.train_pairs=-1 must be an integer >= 0'),
    ('loss.ssim_weight', -0.1, 'loss.ssim_weight=-0.1 must be >= 0'),
    ('loss.pixel', 'huber', "loss.pixel='huber' is unknown; use one of"),
    ('dtype', 'float16', "dtype='float16' is unknown; use one of"),
    ('model.decoders', 'triple', "model.decoders='triple' is unknown"),
    ('model.activation', 'tanh', "model.activation='tanh' is unknown; use one of"),
])
def test_bad_config_values_are_rejected_before_any_work(data_dir, key, value, message):
  from mixae_jax import config_io
  with pytest.raises(ConfigError, match=message):
    config_io.validate(tiny_config(data_dir, **{key: value}))


def test_batch_must_divide_over_devices(data_dir):
  from mixae_jax import config_io
  with pytest.raises(ConfigError, match='batch_size=6 does not divide over the '
                     '4 devices; use a multiple of 4'):
    config_io.validate(tiny_config(data_dir, batch_size=6), num_devices=4)


def test_eval_pairs_beyond_the_test_split(data_dir, tmp_path):
  with pytest.raises(ConfigError, match='eval.num_pairs=500 must be in 1..100'):
    train.train_and_evaluate(tiny_config(data_dir, **{'eval.num_pairs': 500}),
                             tmp_path)
  assert not (tmp_path / 'checkpoints').exists()


def test_fixed_training_pairs_repeat_the_same_mixtures(data_dir):
  config = tiny_config(data_dir)
  ds = pipeline.load_datasets(config.data)
  one = pipeline.make_train_pool(ds, num_pairs=1)
  a = pipeline.sample_batch(one, jax.random.key(0), 4)
  b = pipeline.sample_batch(one, jax.random.key(1), 4)
  np.testing.assert_array_equal(a.mixture, b.mixture)
  np.testing.assert_array_equal(a.mixture[0], a.mixture[3])
  # Three fixed pairs: digit k always meets image k, never another image.
  three = pipeline.make_train_pool(ds, num_pairs=3, pairing_seed=5)
  batch = pipeline.sample_batch(three, jax.random.key(2), 64)
  pairs = {(np.asarray(d).tobytes(), np.asarray(c).tobytes())
           for d, c in zip(batch.first, batch.second)}
  assert len(pairs) == 3
  with pytest.raises(ConfigError, match='data.train_pairs=500 must be in 1..200'):
    pipeline.make_train_pool(ds, num_pairs=500)


@pytest.mark.parametrize('task, name', [('reconstruct_mixture', 'mixture_ae'),
                                        ('reconstruct_digit', 'digit_ae')])
def test_reference_tasks_learn_their_own_targets(data_dir, task, name):
  # The reference designs' loss, as their configs set it: the MSE alone.
  config = tiny_config(data_dir, task=task, **{
      'model.name': name, 'optimizer.schedule': 'constant',
      'optimizer.warmup_steps': 0, 'optimizer.learning_rate': 3e-3,
      'loss.pixel': 'mse', 'loss.ssim_weight': 0.0})
  ds = pipeline.load_datasets(config.data)
  batch = pipeline.sample_batch(pipeline.make_train_pool(ds),
                                      jax.random.key(0), 16)
  inputs, digit_target, image_target = losses.task_io(task, batch)
  if task == 'reconstruct_mixture':
    assert inputs is batch.mixture and digit_target is batch.mixture
  else:
    assert inputs is batch.first and image_target is batch.first
  state = create_train_state(config)
  step = _step(LossSettings.from_config(config))
  history = []
  for i in range(30):
    state, metrics = step(state, batch, jax.random.key(i))
    history.append(float(metrics['loss']))
  assert history[-1] < 0.8 * history[0], history
