"""A long run says at its start how long it will take, and what is shorter."""

import logging

import pytest

from conftest import tiny_config
from mixae_jax import run_length
from mixae_jax import train


@pytest.mark.parametrize('steps, seconds, platform, note', [
    (60_000, 1.0, 'cpu', 'this run has 60,000 steps to go: about 16.7 h on '
     'this CPU (1 s a step); --config=configs/quick.py is the one sized for '
     'a CPU'),
    (1_000_000, 0.5, 'gpu', 'this run has 1,000,000 steps to go: about 5.8 '
     'days on this GPU (0.5 s a step)'),
    (5_000, 1.25, 'cpu', 'about 104 min on this CPU'),
    (5_400, 1.0, 'cpu', None),  # 90 minutes is not long: a CPU recipe's.
    (100, 0.01, 'tpu', None),
])
def test_the_note_names_the_estimate_and_the_config_sized_for_the_device(
    steps, seconds, platform, note):
  got = run_length.long_run_note(steps, seconds, platform)
  if note is None:
    assert got is None
  else:
    assert note in got


class _Enough(Exception):
  pass


def test_a_long_run_logs_the_note_once_after_timing_its_first_steps(
    data_dir, tmp_path, caplog):
  config = tiny_config(data_dir, num_train_steps=10**9, log_every_steps=5,
                       **{'eval.every_steps': 0, 'checkpoint.every_steps': 10**6})
  seen = []

  def stop_after_the_timing(event: str, step: int) -> None:
    seen.append(caplog.text.count('steps to go'))
    if event == 'step' and step == run_length.TIMED_STEPS + 2:
      raise _Enough
  with caplog.at_level(logging.WARNING), pytest.raises(_Enough):
    train.train_and_evaluate(config, tmp_path,
                             callbacks=[stop_after_the_timing])
  # Not before the timed steps (the first, then TIMED_STEPS); then once.
  timed = run_length.TIMED_STEPS + 1
  assert seen == [0] * (timed - 1) + [1, 1]
  assert caplog.text.count('this run has 999,999,989 steps to go: about ') == 1
