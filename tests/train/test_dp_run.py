"""DP runs end to end (digits smoke config): ε in every row, the target-ε stop, exact resume.

The runs check the accounting and the run mechanics, not what the frozen model learns:
they use the tiny test classifier (``tests/helpers/tiny_models.py``), with a clip norm
set to its update norms so that clipping binds.
"""

import json
import os

import jax
import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.federated.aggregation.privacy import dp_settings
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.records import check_or_write_config
from fedbbpt_jax.train.vmapped_sweep import run_vmapped
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

# The tiny model's smoke-run update norms are about 0.03-0.07 (EfficientNet-Lite0's,
# 0.3-0.6): clipping at 0.05 binds for some clients and rounds, not for all.
Z, CLIP = 1.0, 0.05


def dp_config(rounds, target=0.0, seed=0):
  config = with_overrides(tiny(fmnist_effnet.get_config("smoke")), train__rounds=rounds,
                          train__eval_every=10, baselines__zero_shot=False,
                          baselines__local_only=False, server__aggregator="dp_gaussian",
                          seed=seed)
  with_overrides(config, server__dp__noise_multiplier=Z, server__dp__clip_norm=CLIP,
                 server__dp__target_epsilon=target)
  return config


def stop_after_two_target():
  """A target between ε after 2 and after 3 rounds (3 clients, all every round)."""
  s = dp_settings(dp_config(4))
  return 0.5 * (s.epsilon(2) + s.epsilon(3))


def rows_of(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def summary_of(workdir):
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("dp_stop"))
  lines = []
  run(dp_config(4, stop_after_two_target()), workdir, log=lines.append)
  return workdir, lines


def test_every_row_has_the_accountants_epsilon_and_the_clipping_metrics(stopped):
  workdir, _ = stopped
  s = dp_settings(dp_config(4))
  rows = rows_of(workdir)
  assert [r["dp_epsilon"] for r in rows] == [s.epsilon(1), s.epsilon(2)]
  assert 0 < rows[0]["dp_epsilon"] < rows[1]["dp_epsilon"]
  assert all(r["dp_delta"] == 1e-5 for r in rows)
  for r in rows:
    assert 0.0 <= r["dp_clipped_fraction"] <= 1.0 and r["dp_mean_delta_norm"] > 0
    # 3 clients: the clipped fraction is a multiple of 1/3
    assert abs(3 * r["dp_clipped_fraction"] - round(3 * r["dp_clipped_fraction"])) < 1e-6
  assert any(r["dp_clipped_fraction"] > 0 for r in rows)


def test_the_target_stops_the_run_before_the_round_that_would_exceed_it(stopped):
  workdir, lines = stopped
  s = dp_settings(dp_config(4))
  target = stop_after_two_target()
  rows = rows_of(workdir)
  assert [r["round"] for r in rows] == [1, 2]
  assert "test_accuracy" in rows[-1]  # the last round run is evaluated (eval_every=10)
  assert RoundCheckpointer(workdir).latest_round() == 2
  summary = summary_of(workdir)
  assert summary["dp_stopped_at_round"] == 2 and summary["rounds"] == 4
  assert summary["dp_epsilon"] == s.epsilon(2) <= target < s.epsilon(3)
  assert (summary["dp_delta"], summary["dp_noise_multiplier"], summary["dp_clip_norm"],
          summary["dp_accountant"]) == (1e-5, Z, CLIP, "rdp")
  stop = [line for line in lines if line.startswith("stopping before round 3")]
  assert len(stop) == 1
  assert f"target_epsilon={target:g}" in stop[0] and f"{s.epsilon(2):.4g}" in stop[0]
  # Rerunning the same command adds no round and rewrites the same DP summary.
  run(dp_config(4, target), workdir, log=lambda line: None)
  assert [r["round"] for r in rows_of(workdir)] == [1, 2]
  again = summary_of(workdir)
  assert {k: v for k, v in again.items() if k.startswith("dp_")} == {
      k: v for k, v in summary.items() if k.startswith("dp_")}


def test_a_vmapped_sweep_stops_every_member_at_the_same_round(stopped, tmp_path):
  workdir, _ = stopped
  target = stop_after_two_target()
  dirs = [str(tmp_path / "s0"), str(tmp_path / "s1")]
  summaries = run_vmapped([dp_config(4, target, 0), dp_config(4, target, 1)], dirs,
                          log=lambda line: None)
  assert [s["dp_stopped_at_round"] for s in summaries] == [2, 2]
  single = rows_of(workdir)
  member0 = rows_of(dirs[0])
  assert [r["dp_epsilon"] for r in member0] == [r["dp_epsilon"] for r in single]
  for a, b in zip(single, member0, strict=True):  # same run up to float rounding
    np.testing.assert_allclose(b["dp_mean_delta_norm"], a["dp_mean_delta_norm"], rtol=1e-4)
    assert b["dp_clipped_fraction"] == a["dp_clipped_fraction"]


def test_a_resumed_dp_run_equals_an_uninterrupted_one(tmp_path):
  whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
  run(dp_config(3), whole, log=lambda line: None)
  run(dp_config(2), resumed, log=lambda line: None)  # N - 1 rounds, then resume to N
  run(dp_config(3), resumed, log=lambda line: None)
  a, b = rows_of(whole), rows_of(resumed)
  assert [r["round"] for r in b] == [1, 2, 3]
  for x, y in zip(a, b, strict=True):
    for key in ("dp_epsilon", "dp_delta", "dp_clipped_fraction", "dp_mean_delta_norm",
                "train_loss", "cohort", "bb_examples"):
      assert x[key] == y[key], (key, x, y)
  s_whole, _ = RoundCheckpointer(whole).restore(3)
  s_res, _ = RoundCheckpointer(resumed).restore(3)
  for x, y in zip(jax.tree.leaves(s_whole), jax.tree.leaves(s_res), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert summary_of(whole)["dp_epsilon"] == summary_of(resumed)["dp_epsilon"]
  assert "dp_stopped_at_round" not in summary_of(whole)


def test_calibrated_noise_fixes_the_round_count_of_a_workdir(tmp_path):
  config = with_overrides(dp_config(3), server__dp__noise_multiplier=-1.0,
                          server__dp__target_epsilon=30.0)
  s = dp_settings(config)
  assert s.epsilon(3) <= 30.0 and s.noise_multiplier > 0
  check_or_write_config(str(tmp_path), config)
  with pytest.raises(ValueError, match="train.rounds: 3 -> 4"):
    check_or_write_config(str(tmp_path), with_overrides(config, train__rounds=4))
  (tmp_path / "p").mkdir()  # a fixed z: more rounds may be added on resume, as before
  check_or_write_config(str(tmp_path / "p"), dp_config(3))
  check_or_write_config(str(tmp_path / "p"), with_overrides(dp_config(3), train__rounds=4))
