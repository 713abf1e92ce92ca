"""Training: the loss falls, checkpoints round-trip, resume is exact, NaN stops."""

import functools
import json
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from mixae_jax import checkpoints, evaluate, train, writers
from mixae_jax.data import pipeline
from mixae_jax.config_io import PIXEL_LOSSES
from mixae_jax.errors import CheckpointError, ConfigError, NonFiniteLossError


def _trees_equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), a, b)))


def _variables(state):
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _one_batch_to_overfit(data_dir, optimizer='adam'):
  """A small model's fresh state, and one batch of 16 to fit it to."""
  config = tiny_config(data_dir, **{'model.widths': (8, 16),
                                    'optimizer.name': optimizer,
                                    'optimizer.schedule': 'constant',
                                    'optimizer.warmup_steps': 0,
                                    'optimizer.learning_rate': 3e-3})
  ds = pipeline.load_datasets(config.data)
  batch = pipeline.sample_batch(pipeline.make_train_pool(ds),
                                      jax.random.key(0), 16)
  return train.create_train_state(config), batch


@pytest.mark.parametrize('optimizer', ['adam', 'muon'])
def test_loss_falls_when_overfitting_one_batch(data_dir, optimizer):
  state, batch = _one_batch_to_overfit(data_dir, optimizer)
  step = jax.jit(train.train_step)
  losses = []
  for i in range(40):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.5 * losses[0], losses
  assert int(state.step) == 40


def _is_hidden_kernel(path) -> bool:
  """A hidden convolution kernel, named by its path (what Muon must step)."""
  names = [str(k.key) for k in path]
  edge = (names[:2] == ['ConvBlock_0', 'Conv_0']
          or (len(names) == 3 and names[0].endswith('decoder')
              and names[1] == 'Conv_0'))
  return names[-1] == 'kernel' and not edge


@pytest.mark.parametrize('decoders, hidden', [('twin', 9), ('shared', 6)])
def test_muon_orthogonalises_the_hidden_kernels_and_adam_steps_the_rest(
    data_dir, decoders, hidden):
  config = tiny_config(data_dir, **{'model.widths': (8, 16),
                                    'model.decoders': decoders,
                                    'optimizer.name': 'muon',
                                    'optimizer.schedule': 'constant',
                                    'optimizer.warmup_steps': 0,
                                    'optimizer.learning_rate': 1.0})
  params = train.create_train_state(config).params
  leaves, treedef = jax.tree.flatten_with_path(params)
  rng = np.random.default_rng(0)

  def ill_conditioned(p):
    # Singular values spread over two decades, as raw gradients can be.
    g = rng.standard_normal(p.shape).reshape(-1, p.shape[-1])
    g = g * np.logspace(-2, 0, p.shape[-1])
    return jnp.asarray(g.reshape(p.shape), jnp.float32)

  grads = jax.tree.unflatten(treedef, [ill_conditioned(p) for _, p in leaves])
  tx = train.make_optimizer(config)
  updates, _ = tx.update(grads, tx.init(params), params)
  orthogonalised = adam = 0
  for (path, p), u in zip(leaves, jax.tree.leaves(updates)):
    name = jax.tree_util.keystr(path)
    u = np.asarray(u)
    if _is_hidden_kernel(path):  # A 3x3 or up-convolution kernel.
      s = np.linalg.svd(u.reshape(-1, p.shape[-1]), compute_uv=False)
      # Muon's step: near-equal singular values (Newton-Schulz leaves them
      # in about [0.7, 1.2]), scaled to Adam's RMS (0.2 sqrt(max(fans))).
      expected = 0.2 * np.sqrt(max(u.size // p.shape[-1], p.shape[-1]))
      assert 0.5 * expected < s.min() <= s.max() < 1.5 * expected, (name, s)
      orthogonalised += 1
    else:  # The input and output convolutions, biases, norms: Adam's step,
      # the same size everywhere.
      np.testing.assert_allclose(np.abs(u), np.abs(u).flat[0], rtol=1e-3,
                                 err_msg=name)
      adam += 1
  # The (8, 16) U-Net: 4 encoder convolutions (the first reads the image),
  # per decoder 2 convolutions and an up-convolution, then its output
  # convolution: 3 + 3 + 3 hidden with twin decoders, 3 + 3 with one.
  assert orthogonalised == hidden and adam > 4, (orthogonalised, adam)


def test_muon_weight_decay_shrinks_its_kernels_only(data_dir):
  config = tiny_config(data_dir, **{'model.widths': (8, 16),
                                    'optimizer.name': 'muon',
                                    'optimizer.schedule': 'constant',
                                    'optimizer.warmup_steps': 0,
                                    'optimizer.learning_rate': 0.5,
                                    'optimizer.weight_decay': 0.1})
  params = train.create_train_state(config).params
  tx = train.make_optimizer(config)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  decayed = 0
  for (path, p), u in zip(jax.tree.flatten_with_path(params)[0],
                          jax.tree.leaves(updates)):
    if _is_hidden_kernel(path):  # Muon's: decoupled decay, lr * wd.
      np.testing.assert_allclose(u, -0.05 * p, rtol=1e-5, atol=1e-8,
                                 err_msg=jax.tree_util.keystr(path))
      decayed += 1
    else:  # Adam's part (input, outputs, biases, norms) is not decayed.
      np.testing.assert_array_equal(u, 0, err_msg=jax.tree_util.keystr(path))
  assert decayed == 9


def test_ssim_term_is_in_the_loss_and_raises_ssim(data_dir):
  state, batch = _one_batch_to_overfit(data_dir)
  step = jax.jit(functools.partial(train.train_step, digit_weight=0.5,
                                   ssim_weight=0.2))
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
  _, plain = jax.jit(train.train_step)(state, batch, jax.random.key(0))
  assert 'digit_ssim' not in plain


def test_ssim_weight_per_output(data_dir):
  state, batch = _one_batch_to_overfit(data_dir)
  step = jax.jit(functools.partial(train.train_step, ssim_weight=(0.0, 1.0)))
  _, m = step(state, batch, jax.random.key(0))
  m = {k: float(v) for k, v in m.items()}
  assert m['loss'] == pytest.approx(
      m['digit_mse'] + m['image_mse'] + 1.0 * (1 - m['image_ssim']), rel=1e-5)
  # From a config: None takes loss.ssim_weight; a value replaces it.
  config = tiny_config(data_dir, **{'loss.ssim_weight': 0.2})
  assert train.ssim_weights(config) == (0.2, 0.2)
  config = tiny_config(data_dir, **{'loss.ssim_weight': 0.2,
                                    'loss.image_ssim_weight': 1.0})
  assert train.ssim_weights(config) == (0.2, 1.0)


def test_ema_tracks_the_parameters_with_a_ramped_decay(data_dir):
  state, batch = _one_batch_to_overfit(data_dir)
  assert state.ema_params == {}  # Off in the default config: nothing kept.
  state = state.replace(ema_params=state.params)
  step = jax.jit(functools.partial(train.train_step, ema_decay=0.9))
  ema, raw = state.params, state.params
  for i in range(5):
    state, _ = step(state, batch, jax.random.key(i))
    # By hand: the decay ramps up as (1 + t) / (10 + t), capped at 0.9.
    d = min(0.9, (1 + (i + 1)) / (10 + (i + 1)))
    ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, ema, state.params)
    raw = state.params
  for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(ema)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # The average lags the raw parameters, and that is what the model evaluates as.
  assert not _trees_equal(state.ema_params, raw)
  assert _trees_equal(train.inference_state(state).params, state.ema_params)


def test_an_ema_run_evaluates_and_exports_its_average(data_dir, tmp_path):
  from mixae_jax import release  # pylint: disable=g-import-not-at-top
  config = tiny_config(data_dir, **{'optimizer.ema_decay': 0.5,
                                    'eval.every_steps': 0})
  record = train.train_and_evaluate(config, tmp_path / 'run')
  manager = checkpoints.create_manager(tmp_path / 'run', read_only=True)
  state = checkpoints.restore(manager, train.create_train_state(config))
  assert not _trees_equal(state.ema_params, state.params)
  # Re-evaluating the checkpoint gives the end-of-training figures: both use
  # the average.
  assert evaluate.evaluate_checkpoint(config, tmp_path / 'run',
                                      tmp_path / 'again') == record
  release.export(tmp_path / 'run', tmp_path / 'release', dtype='float32')
  released = checkpoints.restore_variables(
      checkpoints.create_manager(tmp_path / 'release', read_only=True),
      _variables(train.create_train_state(config)))
  assert _trees_equal(released['params'], state.ema_params)


def test_pixel_losses_are_the_mse_in_value_and_differ_in_direction():
  # Three images of four pixels, each with one error everywhere.
  per_image = jnp.array([-0.03, 0.1, 0.2])
  error = jnp.broadcast_to(per_image[:, None, None, None], (3, 2, 2, 1))
  mse = per_image ** 2
  grads = {}
  for kind in PIXEL_LOSSES:
    value, grads[kind] = jax.value_and_grad(
        lambda e, kind=kind: train.pixel_term(e, kind))(error)
    assert float(value) == pytest.approx(float(mse.mean()), rel=1e-5), kind
  pixel = lambda g: g[:, 0, 0, 0]  # Every pixel of an image alike.
  np.testing.assert_allclose(pixel(grads['mse']), 2 * per_image / 12, rtol=1e-5)
  # The gradient of mean(log MSE_i), scaled by the batch's mean MSE.
  np.testing.assert_allclose(pixel(grads['psnr']),
                             mse.mean() / mse * 2 * per_image / 12, rtol=1e-4)
  # The mean absolute error's: the same size for every pixel, a sign each.
  mae = jnp.abs(per_image).mean()
  np.testing.assert_allclose(pixel(grads['l1']),
                             mse.mean() / mae * jnp.sign(per_image) / 12,
                             rtol=1e-4)


def test_a_bfloat16_attention_run_with_the_psnr_loss_trains_saves_and_restores(
    data_dir, tmp_path):
  """The options of the quality-per-compute levers, together, end to end."""
  from mixae_jax.inference import Separator  # pylint: disable=g-import-not-at-top
  config = tiny_config(data_dir, num_train_steps=4, dtype='bfloat16',
                       **{'model.attention_heads': 2, 'loss.pixel': 'psnr',
                          'eval.every_steps': 0, 'checkpoint.every_steps': 2,
                          'log_every_steps': 1})
  record = train.train_and_evaluate(config, tmp_path)
  losses = [r['loss'] for r in writers.read_jsonl(tmp_path / 'metrics.jsonl')
            if r['kind'] == 'train']
  assert len(losses) == 4 and np.all(np.isfinite(losses))
  assert record['cifar10']['psnr'] > record['baseline']['cifar10']['psnr']
  state = checkpoints.restore(
      checkpoints.create_manager(tmp_path, read_only=True),
      train.create_train_state(config))
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


def test_train_step_is_pure(data_dir):
  config = tiny_config(data_dir)
  ds = pipeline.load_datasets(config.data)
  pool = pipeline.make_train_pool(ds)
  batch = pipeline.sample_batch(pool, jax.random.key(0), 8)
  state = train.create_train_state(config)
  step = jax.jit(train.train_step)  # Not donated: `state` is used twice.
  a, ma = step(state, batch, jax.random.key(1))
  b, mb = step(state, batch, jax.random.key(1))
  assert float(ma['loss']) == float(mb['loss'])
  assert _trees_equal(a.params, b.params)


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


def test_eval_mode_reproduces_the_end_of_training_metrics(trained_run):
  config, workdir, record = trained_run
  again = evaluate.evaluate_checkpoint(config, workdir)
  assert again == record


def test_checkpoint_round_trip(data_dir, tmp_path):
  config = tiny_config(data_dir, **{'model.name': 'seed004'})
  state = train.create_train_state(config)
  state = state.replace(step=jnp.asarray(7), batch_stats=jax.tree.map(
      lambda x: x + 1.5, state.batch_stats))
  manager = checkpoints.create_manager(tmp_path)
  checkpoints.save(manager, 7, state)
  manager.wait_until_finished()
  restored = checkpoints.restore(manager, train.create_train_state(config))
  assert int(restored.step) == 7
  assert _trees_equal(restored.params, state.params)
  assert _trees_equal(restored.batch_stats, state.batch_stats)
  assert _trees_equal(restored.opt_state, state.opt_state)
  assert _trees_equal(restored.rng, state.rng)


@flax.struct.dataclass
class _TrainStateBeforeEma:
  step: Any
  params: Any
  opt_state: Any
  batch_stats: Any
  rng: Any


def test_a_checkpoint_from_before_the_ema_field_still_restores(data_dir, tmp_path):
  config = tiny_config(data_dir)
  state = train.create_train_state(config).replace(step=jnp.asarray(5))
  # What a run saved before TrainState had ema_params: the same fields in the
  # same order (the checksum follows it), less that one.
  old = _TrainStateBeforeEma(**{f: getattr(state, f) for f in (
      'step', 'params', 'opt_state', 'batch_stats', 'rng')})
  manager = checkpoints.create_manager(tmp_path)
  checkpoints.save(manager, 5, old)
  manager.wait_until_finished()
  restored = checkpoints.restore(manager, train.create_train_state(config))
  assert int(restored.step) == 5 and restored.ema_params == {}
  assert _trees_equal(restored.params, state.params)
  assert _trees_equal(restored.opt_state, state.opt_state)
  # With a moving average configured, the run must start afresh: say so.
  with pytest.raises(CheckpointError, match='saved by a different model or config'):
    checkpoints.restore(manager, train.create_train_state(
        tiny_config(data_dir, **{'optimizer.ema_decay': 0.9})))


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
  restored = checkpoints.restore(manager, train.create_train_state(good))
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
    checkpoints.restore(manager, train.create_train_state(other))


def test_init_from_starts_from_a_release_with_a_fresh_optimizer(trained_run,
                                                                 tmp_path):
  from mixae_jax import release  # pylint: disable=g-import-not-at-top
  config, workdir, _ = trained_run
  release.export(workdir, tmp_path / 'release', dtype='float16')
  source = checkpoints.restore_variables(
      checkpoints.create_manager(tmp_path / 'release', read_only=True),
      _variables(train.create_train_state(config)))
  fresh = train.create_train_state(config)
  state = train.init_from(fresh, tmp_path / 'release')
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
    return checkpoints.restore(manager, train.create_train_state(cfg)).params
  start, end = saved_params(workdir, config), saved_params(tmp_path / 'tuned', tuned)
  assert all(jax.tree.leaves(jax.tree.map(
      lambda a, b: np.allclose(a, b, atol=1e-6), start, end)))
  assert not _trees_equal(end, train.create_train_state(tuned).params)
  # A workdir with checkpoints of its own resumes them; init_from is not read
  # again (here it names a folder that no longer exists).
  gone = tiny_config(config.data.dir, num_train_steps=3, log_every_steps=1,
                     init_from=str(tmp_path / 'gone'), **{'eval.every_steps': 0})
  train.train_and_evaluate(gone, tmp_path / 'tuned')
  assert [r['step'] for r in logs(tmp_path / 'tuned')] == [1, 2, 3]


def test_init_from_a_missing_or_different_model_is_a_clear_error(trained_run,
                                                                  tmp_path):
  config, workdir, _ = trained_run
  state = train.create_train_state(config)
  with pytest.raises(CheckpointError, match=r"config.init_from='.*nowhere': "
                     r'.*nowhere does not exist; name a run folder'):
    train.init_from(state, tmp_path / 'nowhere')
  (tmp_path / 'weights.msgpack').write_bytes(b'x')
  with pytest.raises(CheckpointError, match=r'weights.msgpack is a file, not a '
                     'run folder; name a run folder'):
    train.init_from(state, tmp_path / 'weights.msgpack')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(CheckpointError, match=r'empty/checkpoints does not exist, '
                     r'so .*empty holds no model; name a run folder'):
    train.init_from(state, tmp_path / 'empty')
  other = config.copy_and_resolve_references()
  other.model.widths = (8, 16)
  with pytest.raises(CheckpointError, match=r'config.init_from=.* cannot start '
                     r'this model: .*saved by a different model or config'):
    train.init_from(train.create_train_state(other), workdir)


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
    ('loss.image_ssim_weight', -1.0, 'loss.image_ssim_weight=-1.0 must be >= 0'),
    ('optimizer.ema_decay', 1.0, r'optimizer.ema_decay=1.0 must be in \[0, 1\)'),
    ('loss.pixel', 'huber', "loss.pixel='huber' is unknown; use one of"),
    ('dtype', 'float16', "dtype='float16' is unknown; use one of"),
    ('model.attention_heads', 3, 'model.attention_heads=3 must be 0'),
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
           for d, c in zip(batch.digit, batch.cifar)}
  assert len(pairs) == 3
  with pytest.raises(ConfigError, match='data.train_pairs=500 must be in 1..200'):
    pipeline.make_train_pool(ds, num_pairs=500)


@pytest.mark.parametrize('task, name', [('reconstruct_mixture', 'mixture_ae'),
                                        ('reconstruct_digit', 'digit_ae')])
def test_reference_tasks_learn_their_own_targets(data_dir, task, name):
  config = tiny_config(data_dir, task=task, **{
      'model.name': name, 'optimizer.schedule': 'constant',
      'optimizer.warmup_steps': 0, 'optimizer.learning_rate': 3e-3})
  ds = pipeline.load_datasets(config.data)
  batch = pipeline.sample_batch(pipeline.make_train_pool(ds),
                                      jax.random.key(0), 16)
  inputs, digit_target, image_target = train.task_io(task, batch)
  if task == 'reconstruct_mixture':
    assert inputs is batch.mixture and digit_target is batch.mixture
  else:
    assert inputs is batch.digit and image_target is batch.digit
  state = train.create_train_state(config)
  step = jax.jit(functools.partial(train.train_step, task=task))
  losses = []
  for i in range(30):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics['loss']))
  assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize('schedule', ['cosine', 'constant'])
def test_schedules_warm_up_to_the_peak_and_decay_to_the_final_fraction(
    schedule):
  config = tiny_config('', **{'optimizer.schedule': schedule,
                              'optimizer.learning_rate': 1.0,
                              'optimizer.warmup_steps': 10,
                              'optimizer.final_lr_fraction': 0.01,
                              'num_train_steps': 110})
  lr = train.make_schedule(config)
  assert float(lr(0)) == 0.0
  np.testing.assert_allclose(float(lr(5)), 0.5, rtol=1e-6)
  np.testing.assert_allclose(float(lr(10)), 1.0, rtol=1e-6)
  # Halfway through the decay: the mean of the peak and the end.
  halfway = {'cosine': 0.505, 'constant': 1.0}[schedule]
  np.testing.assert_allclose(float(lr(60)), halfway, rtol=1e-5)
  quarter = {'cosine': 0.01 + 0.99 * (1 + np.cos(np.pi / 4)) / 2,
             'constant': 1.0}[schedule]
  np.testing.assert_allclose(float(lr(35)), quarter, rtol=1e-5)
  end = 1.0 if schedule == 'constant' else 0.01
  np.testing.assert_allclose(float(lr(110)), end, rtol=1e-5)
