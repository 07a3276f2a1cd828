"""A round executor written in test code runs through the one driver (``train.driver``).

The executor here is what a user adding a runtime writes: it runs every round itself
(here by delegating to the simulated round), adds a row entry of its own, reports the
query counts it measured, cannot train the local-only baseline, and refuses a config
before anything is written. The driver does the rest: resume, rows, checkpoints,
summary, baselines.
"""

import json
import os

import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.train import run
from fedbbpt_jax.train.driver import RoundExecutor, drive
from fedbbpt_jax.train.simulation import SimulatedRounds
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny


class CountedRounds(RoundExecutor):
  """The simulated round, its outcome tagged with the executor's own entries."""

  def __init__(self):
    self.inner = SimulatedRounds()
    self.rounds_run: list[int] = []

  def check(self, configs, workdirs):
    if configs[0].server.cohort_size == 1:
      raise ConfigError("config.server.cohort_size=1: this executor needs two clients")

  def start(self, exp, exps, configs, workdirs, states, start_round, schedules, log):
    self.inner.start(exp, exps, configs, workdirs, states, start_round, schedules, log)

  def state(self, i):
    return self.inner.state(i)

  def round(self, r, exps):
    self.rounds_run.append(r + 1)
    [out] = self.inner.round(r, exps)
    out.extra["executor_round"] = r + 1
    out.counters = {**exps[0].round_cost.counters(), "bb_examples": 1000}  # "measured"
    return [out]

  def local_only(self, exp, evaluator, todo, rounds, log):
    log("local-only: not here")
    return None


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _config(rounds):
  return with_overrides(tiny(get_config("smoke")), server__cohort_size=2, train__rounds=rounds,
                        baselines__local_only=True)


def test_a_user_executor_gets_the_drivers_records_resume_and_baselines(tmp_path):
  workdir, reference = str(tmp_path / "run"), str(tmp_path / "reference")
  first = CountedRounds()
  drive([_config(2)], [workdir], first, log=lambda s: None)
  second = CountedRounds()  # the same command with more rounds resumes after round 2
  [summary] = drive([_config(3)], [workdir], second, log=lambda s: None)
  assert (first.rounds_run, second.rounds_run) == ([1, 2], [3])

  rows = _rows(workdir)
  assert [r["round"] for r in rows] == [r["executor_round"] for r in rows] == [1, 2, 3]
  setup = rows[0]["bb_examples"] - 1000  # the label mapping's queries, then 1000 per round
  assert [r["bb_examples"] for r in rows] == [setup + 1000 * k for k in (1, 2, 3)]
  assert summary["black_box_queries"] == setup + 3000
  assert summary["local_only_accuracy"] is None  # the executor could not train it
  assert summary["zero_shot_accuracy"] is not None

  # The executor's round is the simulated one: the same model as train.run's.
  ref = run(with_overrides(_config(3), baselines__local_only=False), reference,
            log=lambda s: None)
  assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in _rows(reference)]
  assert summary["final_accuracy"] == ref["final_accuracy"]


def test_an_executors_refusal_comes_before_anything_is_written(tmp_path):
  with pytest.raises(ConfigError, match="cohort_size=1"):
    drive([with_overrides(_config(1), server__cohort_size=1)], [str(tmp_path / "w")],
          CountedRounds(), log=lambda s: None)
  assert not os.path.exists(tmp_path / "w")
