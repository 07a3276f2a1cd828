"""End-to-end runs of the smoke config: resume bit for bit, records, errors.

Mechanics: the smoke config on the tiny image model of ``tests/helpers/tiny_models.py``
(nothing here depends on which frozen network answers). Learning on the real
EfficientNet-Lite0 is ``tests/train/test_image_learning.py``.
"""

import json
import os

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.federated import ServerState
from fedbbpt_jax.train import ConfigError, run, validate_config
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny


def smoke(**overrides):
  return with_overrides(tiny(get_config("smoke")), **overrides)


def read_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("full"))
  config = smoke(train__rounds=4)
  return workdir, config, run(config, workdir, log=lambda s: None)


def test_smoke_run_writes_its_records(full_run):
  workdir, _, summary = full_run
  for key in ("zero_shot_accuracy", "local_only_accuracy", "final_accuracy", "rounds",
              "num_clients", "black_box_queries", "wall_seconds"):
    assert key in summary
    assert 0.0 <= summary[key] <= 1.0 or not key.endswith("accuracy")
  # Local-only: per-client accuracy and macro-F1, then their means.
  assert len(summary["local_only_client_macro_f1s"]) == summary["num_clients"]
  assert summary["local_only_macro_f1"] == np.mean(summary["local_only_client_macro_f1s"])
  assert summary["local_only_accuracy"] == np.mean(summary["local_only_client_accuracies"])
  rows = read_rows(workdir)
  assert [r["round"] for r in rows] == [1, 2, 3, 4]
  # 3 clients x 3 steps x 4 candidates (SPSA-GC, K=2) x batch 8 per round, after the
  # label-mapping queries (10 unprompted images per client).
  per_round = 3 * 3 * 4 * 8
  assert [r["bb_examples"] for r in rows] == [30 + per_round * k for k in range(1, 5)]
  assert summary["black_box_queries"] == rows[-1]["bb_examples"]
  for name in ("config.json", "summary.json", "accuracy.png", "baselines.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  assert RoundCheckpointer(workdir).latest_round() == 4


def test_four_rounds_equal_two_rounds_resume_two_rounds(full_run, tmp_path):
  full_dir, _, _ = full_run
  workdir = str(tmp_path / "resumed")
  run(smoke(train__rounds=2, baselines__local_only=False), workdir, log=lambda s: None)
  assert len(read_rows(workdir)) == 2
  run(smoke(train__rounds=4, baselines__local_only=False), workdir, log=lambda s: None)
  full, resumed = read_rows(full_dir), read_rows(workdir)
  for a, b in zip(full, resumed):
    for key in ("train_loss", "test_accuracy", "test_loss", "bb_examples", "cohort"):
      assert a[key] == b[key], (key, a, b)
  ck_full, ck_res = RoundCheckpointer(full_dir), RoundCheckpointer(workdir)
  like = {"pattern": jnp.zeros((8, 8, 3))}
  template = ServerState(params=like, opt_state=optax.sgd(1.0).init(like),
                         round=jnp.asarray(0, jnp.int32))
  s_full, _ = ck_full.restore(4, template)
  s_res, _ = ck_res.restore(4, template)
  np.testing.assert_array_equal(np.asarray(s_full.params["pattern"]),
                                np.asarray(s_res.params["pattern"]))
  assert np.abs(np.asarray(s_full.params["pattern"])).max() > 0


def test_a_crash_after_metrics_but_before_the_checkpoint_is_repaired(full_run, tmp_path):
  workdir = str(tmp_path / "crashed")
  run(smoke(train__rounds=2, baselines__local_only=False), workdir, log=lambda s: None)
  # Simulate a crash that wrote round 3's metrics line but not its checkpoint.
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"round": 3, "train_loss": -1.0}) + "\n")
  run(smoke(train__rounds=3, baselines__local_only=False), workdir, log=lambda s: None)
  rows = read_rows(workdir)
  assert [r["round"] for r in rows] == [1, 2, 3]
  assert rows[2]["train_loss"] == read_rows(full_run[0])[2]["train_loss"]


@pytest.mark.parametrize("field,value,message", [
    ("zo__estimator", "adamw", "config.zo.estimator='adamw' is not one of"),
    ("data__partition", "pathological", "config.data.partition"),
    ("client__lr", -0.1, "config.client.lr=-0.1 must be > 0"),
    ("task__image_size", 64, "config.task.image_size=64 must be <= 32"),
    ("server__cohort_size", 7, "config.server.cohort_size=7 must be <= 3"),
])
def test_a_wrong_config_value_fails_at_load_time_naming_the_field(field, value, message, tmp_path):
  config = smoke(**{field: value})
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
    validate_config(config)
  with pytest.raises(ConfigError):
    run(config, str(tmp_path / "bad"), log=lambda s: None)
  assert not os.path.exists(tmp_path / "bad" / "metrics.jsonl")


def test_resuming_with_a_different_config_is_refused(full_run):
  workdir, _, _ = full_run
  with pytest.raises(ValueError, match="zo.sigma"):
    run(smoke(train__rounds=4, zo__sigma=0.5), workdir, log=lambda s: None)


def test_query_budget_stops_the_run_after_the_last_complete_round(full_run, tmp_path):
  from fedbbpt_jax.blackbox import QueryBudgetExceeded
  workdir = str(tmp_path / "budget")
  config = smoke(blackbox__budget_examples=30 + 288 + 100, baselines__local_only=False)
  with pytest.raises(QueryBudgetExceeded, match="318 of 418"):
    run(config, workdir, log=lambda s: None)
  assert [r["round"] for r in read_rows(workdir)] == [1]
  assert RoundCheckpointer(workdir).latest_round() == 1
