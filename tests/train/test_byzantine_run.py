"""End-to-end: a run with Byzantine clients and dropouts records them and resumes bit-exact."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.federated.simulated_faults.attacks import seed_malicious_ids
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

# Seed 2 with p = 0.5 drops all but one client in round 1, one in round 2 and all three in
# round 3 (the draws are a pure function of (seed, round, client id)).
SURVIVORS = [1, 2, 0]


def config():
  return with_overrides(tiny(get_config("smoke")), seed=2, train__rounds=3, server__dropout=0.5,
                        server__aggregator="median", attack__kind="sign_flip",
                        attack__fraction=0.34, attack__scale=5.0,
                        baselines__zero_shot=False, baselines__local_only=False)


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("byzantine"))
  lines = []
  summary = run(config(), workdir, log=lines.append)
  return workdir, summary, lines


def test_rows_record_survivors_attackers_and_the_round_nobody_reported_in(whole):
  workdir, _, lines = whole
  got = rows(workdir)
  assert [r["survivors"] for r in got] == SURVIVORS
  assert [r["no_survivors"] for r in got] == [False, False, True]
  assert [r["attackers"] for r in got] == [1, 1, 1]  # every client is in every cohort
  assert got[2]["train_loss"] is None and np.isfinite(got[1]["train_loss"])
  assert sum("round 3: no client of the cohort reported" in line for line in lines) == 1
  # A dropped client still spent its queries: every round costs the same.
  spent = np.diff([0] + [r["bb_examples"] for r in got])
  assert spent[1] == spent[2] == 3 * 3 * 4 * 8  # 3 clients x 3 steps x 4 candidates x 8
  # The round without survivors left the parameters and the server state as they were.
  state2, _ = RoundCheckpointer(workdir).restore(2)
  state3, _ = RoundCheckpointer(workdir).restore(3)
  assert int(state3["round"]) == 3
  for a, b in zip(jax.tree.leaves((state2["params"], state2["opt_state"])),
                  jax.tree.leaves((state3["params"], state3["opt_state"])), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert got[2]["test_accuracy"] == got[1]["test_accuracy"]


def test_summary_names_the_malicious_clients(whole):
  _, summary, _ = whole
  assert summary["malicious_clients"] == seed_malicious_ids(2, 3, 0.34)
  assert len(summary["malicious_clients"]) == 1  # round(0.34 * 3) = 1
  assert summary["attack_kind"] == "sign_flip" and summary["attack_fraction"] == 0.34
  assert summary["dropout"] == 0.5 and summary["aggregator"] == "median"


def test_resume_with_dropouts_and_attackers_equals_the_uninterrupted_run(whole, tmp_path):
  workdir, _, _ = whole
  resumed = str(tmp_path / "resumed")
  shutil.copytree(workdir, resumed)
  for r in ("2", "3"):  # the crash: rounds 2 and 3 not saved
    shutil.rmtree(os.path.join(resumed, "checkpoints", r))
  assert RoundCheckpointer(resumed).latest_round() == 1
  run(config(), resumed, log=lambda s: None)
  for a, b in zip(rows(workdir), rows(resumed), strict=True):
    for key in ("train_loss", "test_accuracy", "bb_examples", "cohort", "survivors",
                "no_survivors", "attackers"):
      assert a[key] == b[key], (key, a, b)
  s_whole, _ = RoundCheckpointer(workdir).restore(3)
  s_res, _ = RoundCheckpointer(resumed).restore(3)
  for x, y in zip(jax.tree.leaves(s_whole), jax.tree.leaves(s_res), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
