"""The quality benchmark's rows name real config fields with valid values.

Each row of benchmarks/quality.py trains for minutes to an hour; a mistyped
override key or a value the config rejects must fail here, in seconds.
"""

import pytest

from benchmarks import quality
from mixae_jax import config_io
from mixae_jax.errors import ConfigError

ROWS = quality.ZOO + quality.COMPUTE


@pytest.mark.parametrize('name', sorted(quality.SETS))
def test_row_names_are_unique_within_a_set(name):
  names = [row.name for row in quality.SETS[name]]
  assert len(names) == len(set(names))


@pytest.mark.parametrize('row', ROWS, ids=lambda row: row.name)
def test_each_row_overrides_existing_fields_with_valid_values(row):
  base = quality._load_config(row.config)  # pylint: disable=protected-access
  config = quality.with_settings(base, row.overrides)
  config_io.validate(config, num_devices=1)
  for key, value in row.overrides.items():
    got = quality._get(config, key)  # pylint: disable=protected-access
    assert (list(got) if isinstance(got, tuple) else got) == (
        list(value) if isinstance(value, tuple) else value), key


@pytest.mark.parametrize('rows', [quality.COMPUTE, quality.PAIRS])
def test_equal_time_rows_share_timings_only_with_rows_of_the_same_step(rows):
  by_name = {row.name: row for row in rows}
  for row in rows:
    if row.timed_as:
      timed = by_name[row.timed_as]
      assert timed.timed_as is None
      # The same network at the same batch: only the optimizer, the seed,
      # the loss (its terms cost the same at any weight) or the dtype differ.
      same = {k for k in row.overrides if not k.startswith(
          ('optimizer.', 'seed', 'loss.', 'dtype'))}
      assert {k: row.overrides[k] for k in same} == {
          k: timed.overrides.get(k) for k in same}, row.name
      # ...but a loss without its SSIM term is cheaper.
      assert bool(row.overrides.get('loss.ssim_weight')) == bool(
          timed.overrides.get('loss.ssim_weight')), row.name


def test_a_mistyped_override_is_refused():
  base = quality._load_config('configs/quick.py')  # pylint: disable=protected-access
  with pytest.raises(KeyError, match='model.widht'):
    quality.with_settings(base, {'model.widht': (8, 16)})
  bad = quality.with_settings(base, {'optimizer.schedule': 'cosin'})
  with pytest.raises(ConfigError, match='optimizer.schedule'):
    config_io.validate(bad, num_devices=1)


def test_reuse_keeps_a_run_that_predates_a_field_and_not_a_changed_one(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  row = next(r for r in quality.ZOO if r.name == 'dual')
  config = quality._load_config(row.config)  # pylint: disable=protected-access
  # The benchmark's budget, set by hand: its flags are not parsed in a test.
  settings = {'num_train_steps': 1000, 'batch_size': 64,
              'optimizer.warmup_steps': 100, 'eval.num_pairs': 10000,
              'eval.every_steps': 0, 'checkpoint.every_steps': 1000}
  def saved_run(folder, **changes):
    run = quality.with_settings(config, {**settings, **changes}).to_dict()
    # Fields added after the run was made (their upgrade-table values are
    # dual.py's), and one since removed at the value the code computes.
    del run['init_from'], run['model']['decoders']
    run['optimizer']['ema_decay'] = 0.0
    (folder / 'eval').mkdir(parents=True)
    (folder / 'config.json').write_text(json.dumps(run))
    (folder / 'eval' / 'metrics.json').write_text(
        json.dumps({'step': settings['num_train_steps']}))
    return folder
  done = quality._already_done  # pylint: disable=protected-access
  assert done(saved_run(tmp_path / 'old'), config, settings, reuse=True)
  assert not done(saved_run(tmp_path / 'seed', seed=1), config, settings,
                  reuse=True)
  assert not done(tmp_path / 'old', config, settings, reuse=False)


def _result(row, digit_psnr, extra):
  cell = {'psnr': digit_psnr, 'ssim': 0.5, 'mse': 0.01}
  return {'row': row, 'labels': ['mnist', 'cifar10'], 'mnist': cell,
          'cifar10': dict(cell, psnr=10.0), 'extra': extra}


def test_summary_keeps_protocol_scores_apart_from_own_objective():
  got = quality.summary([_result('single_pair', 9.34,
                                 {'pair_digit_psnr': 11.48})])
  assert got['single_pair']['digit_psnr'] == 9.34
  assert got['single_pair']['pair_digit_psnr'] == 11.48
  assert got['single_pair']['cifar_psnr'] == 10.0


def test_summary_refuses_an_own_objective_that_shadows_a_protocol_score():
  with pytest.raises(ValueError, match='digit_psnr'):
    quality.summary([_result('single_pair', 9.34, {'digit_psnr': 11.48})])


def test_the_papers_pairing_and_mixture_baseline_follow_their_protocol():
  from benchmarks import papers  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  first, second = papers.permutation_pairs(10_000)
  # LASS's pairs: each test item against a seeded permutation of the set.
  np.testing.assert_array_equal(first, np.arange(10_000))
  np.testing.assert_array_equal(
      second, np.random.default_rng(100).permutation(10_000))
  digits = np.random.default_rng(0).integers(0, 256, (6, 28, 28), np.uint8)
  got = papers.mixture_as_answer(digits)
  j = np.random.default_rng(100).permutation(6)
  x, y = digits / 255.0, digits[j] / 255.0
  mix = (x + y) / 2
  psnr = lambda p, t: -10 * np.log10(np.mean((p - t) ** 2, axis=(1, 2)))
  with np.errstate(divide='ignore'):  # A digit paired with itself.
    want = 0.5 * (psnr(mix, x) + psnr(mix, y))
  assert not np.isfinite(want).all()  # This pairing has one: it is counted.
  finite = np.isfinite(want)
  assert got['pairs'] == finite.sum() and got['identical'] == (~finite).sum()
  assert got['psnr'] == pytest.approx(want[finite].mean(), rel=1e-4)


def test_rows_of_another_pair_are_tabled_and_summarised_by_its_sources():
  cell = {'psnr': 18.5, 'ssim': 0.7, 'mse': 0.01}
  result = {'row': 'cifar_mse', 'what': 'w', 'trained': '10 x 64',
            'seconds': 60.0, 'labels': ['cifar10_1', 'cifar10_2'],
            'cifar10_1': cell, 'cifar10_2': dict(cell, ssim=0.6),
            'baseline': {'cifar10_1': cell, 'cifar10_2': cell}, 'extra': {}}
  assert quality.summary([result]) == {'cifar_mse': {
      'cifar10_1_psnr': 18.5, 'cifar10_1_ssim': 0.7,
      'cifar10_2_psnr': 18.5, 'cifar10_2_ssim': 0.6}}
  header, _, _, row = quality.table([result]).splitlines()
  assert 'cifar10_1 PSNR | cifar10_1 SSIM | cifar10_2 PSNR' in header
  assert '| 18.50 | 0.7000 | 18.50 | 0.6000 | 1.0 min |' in row
