"""client.upload='seeds' end to end (digits smoke config): same model as 'dense', fewer bytes."""

import json
import os

import jax
import numpy as np
import pytest

from configs import drug_minilm, fmnist_effnet
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.config_check import validate_config
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

ROUNDS = 2


def smoke(upload, **overrides):
  return with_overrides(tiny(fmnist_effnet.get_config("smoke")), train__rounds=ROUNDS,
                        train__eval_every=10, baselines__zero_shot=False,
                        baselines__local_only=False, client__upload=upload, **overrides)


def rows_of(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  out = {}
  for upload in ("dense", "seeds"):
    workdir = str(tmp_path_factory.mktemp(upload))
    run(smoke(upload), workdir, log=lambda line: None)
    state, _ = RoundCheckpointer(workdir).restore(ROUNDS)
    first, _ = RoundCheckpointer(workdir).restore(1)
    out[upload] = (rows_of(workdir), state["params"], first["params"])
  return out


def test_seed_uploads_end_at_the_dense_runs_global_params(runs):
  dense, seeds = runs["dense"][1], runs["seeds"][1]
  moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
              for a, b in zip(jax.tree.leaves(dense), jax.tree.leaves(runs["dense"][2])))
  assert moved > 1e-4  # round 2 changed the global params
  for a, b in zip(jax.tree.leaves(dense), jax.tree.leaves(seeds)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
  assert [r["train_loss"] for r in runs["dense"][0]] == pytest.approx(
      [r["train_loss"] for r in runs["seeds"][0]], rel=1e-6)


def test_rows_report_the_exact_upload_and_download_bytes(runs):
  config = smoke("seeds")
  num_params = sum(int(np.size(a)) for a in jax.tree.leaves(runs["dense"][1]))
  cohort = config.data.num_clients                  # cohort_size 0: every client
  candidates = 2 * config.zo.num_directions         # spsa_gc: +- pairs
  dense_bytes = cohort * 4 * num_params
  seed_bytes = cohort * (8 + 4 * config.client.local_steps * candidates)  # threefry key: 2 x u32
  assert (cohort, candidates, config.client.local_steps) == (3, 4, 3)
  for upload, want in (("dense", dense_bytes), ("seeds", seed_bytes)):
    rows = runs[upload][0]
    assert len(rows) == ROUNDS
    assert [r["upload_bytes"] for r in rows] == [want] * ROUNDS
    assert [r["download_bytes"] for r in rows] == [cohort * 4 * num_params] * ROUNDS
  ratio = runs["dense"][0][0]["upload_bytes"] / runs["seeds"][0][0]["upload_bytes"]
  assert ratio == pytest.approx(4 * num_params / 56)
  assert num_params == 192  # the smoke run's frame prompt: 192 params -> 768 vs 56 bytes
  assert ratio > 1


def test_text_bdpl_seed_uploads_end_at_the_dense_runs_prompt(tmp_path):
  """The drug-review BDPL prompt (categorical samples, simplex projection): a round with
  seed uploads gives the dense run's probabilities exactly."""
  params = {}
  for upload in ("dense", "seeds"):
    config = with_overrides(tiny(drug_minilm.get_config("smoke")), train__rounds=1,
                            train__eval_every=10, baselines__zero_shot=False,
                            baselines__local_only=False, client__upload=upload)
    run(config, str(tmp_path / upload), log=lambda line: None)
    params[upload], _ = RoundCheckpointer(str(tmp_path / upload)).restore(1)
    cohort = config.server.cohort_size or config.data.num_clients
    bytes_per_client = rows_of(str(tmp_path / upload))[0]["upload_bytes"] / cohort
  assert bytes_per_client == 8 + 4 * config.client.local_steps * config.zo.num_directions
  for a, b in zip(jax.tree.leaves(params["dense"]), jax.tree.leaves(params["seeds"])):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("overrides, fields", [
    ({"zo__estimator": "cma_es", "zo__num_directions": 4}, ["client.upload", "zo.estimator"]),
    ({"server__algorithm": "fedbpt"}, ["client.upload", "server.algorithm"]),
    ({"server__algorithm": "centralized"}, ["client.upload", "server.algorithm"]),
])
def test_refused_combinations_name_the_fields(overrides, fields):
  with pytest.raises(ConfigError) as err:
    validate_config(smoke("seeds", **overrides))
  for field in fields:
    assert f"config.{field}=" in str(err.value)


def test_an_unknown_upload_mode_is_refused():
  with pytest.raises(ConfigError, match=r"config\.client\.upload='sparse'.*'dense'.*'seeds'"):
    validate_config(smoke("sparse"))


def test_dp_and_attacks_act_on_the_replayed_deltas_as_on_dense_ones(tmp_path):
  # DP-FedAvg clips and noises the replayed deltas; a sign-flip attacker flips its replayed
  # delta: the same global params as the dense run (same keys for noise and attackers).
  params = {}
  for upload in ("dense", "seeds"):
    config = smoke(upload, server__aggregator="dp_gaussian", attack__kind="sign_flip",
                   attack__fraction=0.34)
    with_overrides(config, server__dp__clip_norm=0.3, server__dp__noise_multiplier=1.0)
    run(config, str(tmp_path / upload), log=lambda line: None)
    params[upload], _ = RoundCheckpointer(str(tmp_path / upload)).restore(ROUNDS)
    rows = rows_of(str(tmp_path / upload))
    assert [r["attackers"] for r in rows] == [1] * ROUNDS and "dp_epsilon" in rows[-1]
  for a, b in zip(jax.tree.leaves(params["dense"]["params"]),
                  jax.tree.leaves(params["seeds"]["params"])):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
