"""Resume is bit-exact for every kind of state: CMA-ES, server Adam, per-client (DFedSAM), text.

Each case runs 2 rounds in one go, copies the workdir as a crash during round 2 would
leave it (round 2's checkpoint gone), resumes the copy, and compares the metrics rows
and every leaf of the round-2 checkpoint.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import fmnist_effnet, glue_roberta
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

CASES = {
    # FedBPT: the server state is the global CMA-ES (mean, C, paths, sigma) + local sigma.
    "image_fedbpt": lambda: with_overrides(
        tiny(fmnist_effnet.get_config("smoke")), server__algorithm="fedbpt", zo__estimator="cma_es",
        zo__num_directions=4, zo__sigma=0.5),
    # FedAdam: the server optimizer's moments are state.
    "image_server_adam": lambda: with_overrides(
        tiny(fmnist_effnet.get_config("smoke")), server__optimizer="adam", server__lr=0.01),
    # DFedSAM-MGS on a graph redrawn every round: per-client state, the round's graph.
    "image_dfedsam_time_varying": lambda: with_overrides(
        tiny(fmnist_effnet.get_config("smoke")), server__algorithm="dfedsam",
        decentralized__topology="erdos_renyi", decentralized__time_varying=True,
        decentralized__gossip_steps=2),
    # A text run: GLUE BDPL (tiny RoBERTa made in the test) with FedAvgM, one-client cohort.
    "text_server_momentum": lambda: with_overrides(
        glue_roberta.get_config("smoke"), server__optimizer="momentum", server__cohort_size=1),
}


def _config(case, rounds, glue_assets):
  """``rounds`` rounds of the case, evaluated every round, no baselines."""
  tfds_dir, model_dir = glue_assets
  config = CASES[case]()
  if config.task.family == "glue":
    with_overrides(config, data__tfds_dir=tfds_dir, blackbox__model_dir=model_dir)
  return with_overrides(config, train__rounds=rounds, train__eval_every=1,
                        baselines__zero_shot=False, baselines__local_only=False)


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_round_then_resume_equals_two_rounds(case, tmp_path, glue_assets):
  whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
  run(_config(case, 2, glue_assets), whole, log=lambda s: None)
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "2"))  # the crash: round 2 not saved
  assert RoundCheckpointer(resumed).latest_round() == 1
  run(_config(case, 2, glue_assets), resumed, log=lambda s: None)
  for a, b in zip(_rows(whole), _rows(resumed), strict=True):
    for key in ("train_loss", "test_accuracy", "test_loss", "bb_examples", "cohort"):
      assert a[key] == b[key], (case, key, a, b)
  s_whole, _ = RoundCheckpointer(whole).restore(2)
  s_res, _ = RoundCheckpointer(resumed).restore(2)
  s_start, _ = RoundCheckpointer(whole).restore(1)
  leaves = jax.tree.leaves(s_whole)
  assert len(leaves) == len(jax.tree.leaves(s_res)) >= 2  # params (+ optimizer state), round
  for x, y in zip(leaves, jax.tree.leaves(s_res), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       s_whole["params"], s_start["params"])
  assert max(jax.tree.leaves(moved)) > 0, "the generator did not move in round 2"
