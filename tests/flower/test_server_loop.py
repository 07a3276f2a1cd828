"""The deployed server's whole loop (``run_deployment``) over an in-process Grid that
calls the real ClientApp: with the iterative label mapping (the server re-derives it,
the nodes read it back) it equals ``train.run``; a server stopped after round 2 and
restarted ends where an uninterrupted one does; a connected node that never answers
counts as dropped."""

import json
import os

import jax
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.flower.server_app import run_deployment
from fedbbpt_jax.flower.settings import run_settings
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.inprocess_grid import InProcessGrid
from tests.helpers.tiny_models import tiny

pytestmark = pytest.mark.slow  # make test-quick leaves it out

ROUNDS = 3



def ilm_config(rounds=ROUNDS):
  c = tiny(get_config("smoke"))
  c.baselines.local_only = False
  c.task.remap_every = 1          # refreshes before rounds 2 and 3
  c.train.rounds = rounds
  return c


def deploy(config, workdir, grid):
  return run_deployment(grid, config, run_settings({"workdir": workdir, "round-timeout": 60}),
                        log=lambda line: None)


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def params(workdir, config):
  exp = build_experiment(config, workdir=workdir)
  state, _ = RoundCheckpointer(workdir).restore(config.train.rounds,
                                                exp.algorithm.init(exp.init_params))
  return jax.tree.leaves(state.params)


def test_ilm_deployment_stopped_and_resumed_equals_simulation(tmp_path):
  """The server stops after round 2 (one refresh done) and is restarted: it reads the
  refresh back, refreshes again before round 3, and ends at the simulation's model."""
  config = ilm_config()
  run(config, str(tmp_path / "sim"), log=lambda line: None)
  workdir = str(tmp_path / "flower")
  deploy(ilm_config(rounds=2), workdir, InProcessGrid(str(tmp_path / "nodes"), range(3)))
  grid = InProcessGrid(str(tmp_path / "nodes"), range(3))
  deploy(config, workdir, grid)

  sim, got = rows(tmp_path / "sim"), rows(workdir)
  assert [r.get("task_refreshed", False) for r in sim] == [False, True, True]
  assert len(got) == ROUNDS
  for d, s in zip(got, sim):
    assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4)
    assert d["test_accuracy"] == pytest.approx(s["test_accuracy"], abs=0.011)
    for key in ("cohort", "bb_examples", "bb_calls", "upload_bytes", "download_bytes"):
      assert d[key] == s[key], key
    assert d.get("task_refreshed") == s.get("task_refreshed")
  for a, b in zip(params(str(tmp_path / "sim"), config), params(workdir, config)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
  # The nodes got the refreshed mapping's file. After the restart: discovery asked each
  # node once, then its size (the server holds no data), then the re-map's counts and
  # guard before round 3 (the first mapping was read back: no new counts); only round 3
  # was trained.
  assert list((tmp_path / "nodes" / "node0").glob("run-*/label_map_r0002.npz"))
  assert [t for t, _ in grid.sent] == ["query"] * 3 + ["query.setup"] * 9 + ["train"] * 3


def test_a_node_that_never_answers_is_dropped_every_round(tmp_path):
  config = ilm_config(rounds=2)
  config.task.remap_every = 0
  grid = InProcessGrid(str(tmp_path / "nodes"), range(3), down=(1,))
  strict = run_settings({"workdir": str(tmp_path / "strict"), "discover-timeout": 1.0})
  with pytest.raises(RuntimeError, match=r"only partitions \[0, 2\] of 3 connected"):
    run_deployment(grid, config, strict, log=lambda line: None)  # min-nodes 0 = every client
  settings = run_settings({"workdir": str(tmp_path / "lenient"), "min-nodes": 2,
                           "discover-timeout": 1.0, "round-timeout": 70.0,
                           "setup-timeout": 90.0})
  grid = InProcessGrid(str(tmp_path / "nodes"), range(3), down=(1,))
  summary = run_deployment(grid, config, settings, log=lambda line: None)
  got = rows(tmp_path / "lenient")
  assert [(r["survivors"], r["nodes_missing"]) for r in got] == [(2, 1), (2, 1)]
  assert summary["final_accuracy"] > 0
  # The silent node is asked once, at the first discovery; the rounds' discoveries keep
  # that question open instead of asking again and waiting out the grace every round.
  assert grid.sent.count(("query", 1)) == 1
  assert grid.sent.count(("query", 0)) == 1 and grid.sent.count(("train", 0)) == 2
  # Set-up statistics wait `setup-timeout`, rounds `round-timeout`.
  assert sorted(set(grid.waits)) == [("query.setup", 90.0), ("train", 70.0)]


def test_seed_download_rebuilds_the_dense_runs_models(tmp_path):
  """download='seeds' (cohort 2 of 3: nodes miss rounds and catch up on several): every
  node trains from the model it replayed, so the run equals the dense-download run; the
  first message to each node carries the whole state, later ones only the rounds since."""
  config = ilm_config(rounds=4)
  config.task.remap_every = 0
  config.client.upload = "seeds"
  config.server.cohort_size = 2
  grids = {}
  for download in ("dense", "seeds"):
    grids[download] = InProcessGrid(str(tmp_path / f"nodes_{download}"), range(3))
    settings = run_settings({"workdir": str(tmp_path / download), "download": download})
    run_deployment(grids[download], config, settings, log=lambda line: None)
  dense, seeds = rows(tmp_path / "dense"), rows(tmp_path / "seeds")
  assert [r["cohort"] for r in dense] == [r["cohort"] for r in seeds]
  assert [r["train_loss"] for r in dense] == [r["train_loss"] for r in seeds]
  for a, b in zip(params(str(tmp_path / "dense"), config), params(str(tmp_path / "seeds"), config)):
    np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
  # Bytes: dense sends 2 x 768 B a round (192 float32 each). Seeds: a node's first
  # message holds the whole state (params 768 B + round 4 B; plain SGD keeps no server
  # optimizer state), later ones 130 B per round since its last one (the cohort's keys
  # 2 x 8, losses 2 x 3 steps x 4 candidates x 4, counts 8, ids 8, report flags 2).
  assert [r["download_bytes"] for r in dense] == [2 * 768] * 4
  last, want = {}, []
  for r, row in enumerate(seeds):
    want.append(sum(772 if p not in last else 130 * (r - last[p]) for p in row["cohort"]))
    last.update({p: r for p in row["cohort"]})
  assert [r["download_bytes"] for r in seeds] == want
  assert sum(want[1:]) < sum(r["download_bytes"] for r in dense[1:])
  with pytest.raises(Exception, match="needs config.client.upload='seeds'"):
    run_deployment(grids["dense"], ilm_config(), run_settings({"workdir": str(tmp_path / "x"),
                                                               "download": "seeds"}))
