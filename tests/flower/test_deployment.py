"""A real Flower deployment on loopback (``tests/helpers/flower_loopback.py``: SuperLink,
3 SuperNodes, one partition and API key each, the model provider's services of the tiny
image and text models, ``flwr run``) whose server holds no training data: its plugin
(``tests/helpers/server_plugins.py``) makes reading the datasets' training splits raise,
so the set-up can only come from the nodes' statistics.

Two runs of 2 rounds, at once on the federation: the image defaults (the frequency label
mapping from the nodes' counts, an ILM re-map before round 2, dense uploads) and the text
track (the candidate vocabulary from the nodes' word counts, seed-and-scalar uploads and
downloads: the nodes replay round 1 themselves). Each ends at the generator of the
in-process simulation with the same config and seed (float tolerance), with the same
metrics, traffic, query counts and set-up files; the provider charged each node's key
exactly that node's queries: its mapping images, its training, its local test split.
Every request the image service computes holds 16 examples at most (the same rows per
request in simulation and deployment; the simulations run while the deployments do, on
the server's key).

The image run also tests every round on the clients (``train.evaluation='both'``): each
node scores the global model on its local test split through the ClientApp's ``evaluate``
handler and pays for exactly those rows; the deployed ``fed_test_*`` columns equal the
simulation's.
"""

import concurrent.futures
import os
import time

import jax
import numpy as np
import pytest

from fedbbpt_jax.data import local_test_parts
from fedbbpt_jax.flower.settings import load_config
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.federated.algorithms.algorithm import tree_bytes
from fedbbpt_jax.flower.node import activation_counters
from tests.helpers.flower_loopback import (COMMON, NODES, SERVER_PLUGINS,  # noqa: F401
                                           deployment, federation, final_params, node_extra,
                                           rows, services, usage)
from tests.helpers.tiny_models import IMAGE, TEXT

pytestmark = pytest.mark.slow  # make test-quick leaves it out


# The image defaults (frequency label mapping, ILM re-map before round 2) with dense
# uploads and downloads; the text track (BDPL, candidate vocabulary from the nodes'
# word counts) with seed-and-scalar uploads and downloads.
CASES = {
    "image": ("configs/fmnist_effnet.py:smoke", IMAGE, "dense",
              "data.test_examples=192 train.eval_batch_size=96 task.remap_every=1 "
              "train.evaluation=both"),
    "text": ("configs/drug_minilm.py:smoke", TEXT, "seeds", "train.evaluation=central"),
}


@pytest.fixture(scope="module")
def models():
  return (IMAGE, TEXT)


@pytest.fixture(scope="module")
def deployed(federation, services, tmp_path_factory):
  """Both deployments run at once on the federation (two `flwr run`s: their waits for
  the nodes overlap) while the simulations run here, one after the other, on the
  server's key. ``{case: (config, workdir, simulation's workdir, stdout, wall, each node
  key's usage of the case's service)}``."""
  root = tmp_path_factory.mktemp("deployed")
  runs = {}
  for case, (config_spec, model, upload, extra) in CASES.items():
    overrides = (f"{COMMON} blackbox.model={model} blackbox.url={services[model].url} "
                 f"client.upload={upload} {extra}")
    runs[case] = dict(spec=config_spec, model=model, upload=upload, overrides=overrides,
                      workdir=root / case / "flower", sim=root / case / "sim",
                      before=[usage(services[model], f"node-key-{i}") for i in range(NODES)])

  def deploy(r):
    t0 = time.time()
    out = federation.run({"config": r["spec"], "imports": SERVER_PLUGINS,
                          "overrides": r["overrides"], "workdir": str(r["workdir"]),
                          "round-timeout": 300.0,
                          "download": r["upload"]})  # seeds: nodes replay the rounds themselves
    return out, time.time() - t0

  key = os.environ.get("FEDBBPT_SERVER_KEY")
  with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
    deploying = {case: pool.submit(deploy, r) for case, r in runs.items()}
    os.environ["FEDBBPT_SERVER_KEY"] = "server-key"  # (the server's key: no node's)
    try:
      for r in runs.values():
        r["config"] = load_config(r["spec"], r["overrides"])
        run(r["config"], str(r["sim"]), log=lambda line: None)
    finally:
      if key is None:
        os.environ.pop("FEDBBPT_SERVER_KEY", None)
      else:
        os.environ["FEDBBPT_SERVER_KEY"] = key
    for case, future in deploying.items():
      runs[case]["out"], runs[case]["wall"] = future.result()
  for r in runs.values():
    r["used"] = [usage(services[r["model"]], f"node-key-{i}") - r["before"][i]
                 for i in range(NODES)]
  return runs


@pytest.mark.parametrize("case", list(CASES))
def test_deployment_with_no_training_data_at_the_server_equals_simulation(deployed, case):
  r = deployed[case]
  config, out, wall, used = r["config"], r["out"], r["wall"], r["used"]
  tmp_path = r["workdir"].parent
  assert "final accuracy" in out.stdout, out.stdout[-3000:]
  # Every node paid for its own queries: (images) the label counts and the re-map's
  # counts on its 10 mapping images, 2 rounds of training and 2 evaluations of its local
  # test split. (Text: the word counts cost no query; the verbalizers are the server's.)
  exp = build_experiment(config, workdir=str(tmp_path / "sim"))  # no query: files kept
  splits = local_test_parts(exp.test_y, config.data)
  mapping, tested = (2 * 10, 2) if case == "image" else (0, 0)
  per_round = activation_counters(exp)["bb_examples"]
  assert used == [mapping + 2 * per_round + tested * len(split) for split in splits]

  deployed_rows, simulated = rows(tmp_path / "flower"), rows(tmp_path / "sim")
  for d, s in zip(deployed_rows, simulated, strict=True):
    assert d["cohort"] == s["cohort"]
    assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
    assert d["test_accuracy"] == pytest.approx(s["test_accuracy"], abs=1 / len(exp.test_y))
    for key in ("upload_bytes", "bb_examples", "bb_calls", "eval_bb_examples"):
      assert d[key] == s[key], key
    if tested:  # federated evaluation: every node tested the model on its own split
      for key in ("fed_test_examples", "fed_test_clients"):
        assert d[key] == s[key], key
      for key in ("fed_test_accuracy", "fed_test_macro_f1", "fed_test_client_accuracy_min",
                  "fed_test_client_accuracy_mean", "fed_test_client_accuracy_max",
                  "fed_test_client_accuracy_std"):
        assert d[key] == pytest.approx(s[key], abs=1e-12), key  # the same predictions
      assert d["fed_test_loss"] == pytest.approx(s["fed_test_loss"], rel=1e-5)
    assert d["nodes_missing"] == 0 and d["survivors"] == NODES
    assert d.get("task_refreshed") == s.get("task_refreshed")
  # Downloads: dense, the global model to 3 nodes each round; seeds, the whole state the
  # first time, then round 1's record (key data, losses, counts, ids: far smaller).
  model_bytes = 3 * tree_bytes(exp.algorithm.broadcast(exp.algorithm.init(exp.init_params)))
  assert [row["download_bytes"] for row in simulated] == [model_bytes] * 2
  if r["upload"] == "dense":
    assert [row["download_bytes"] for row in deployed_rows] == [model_bytes] * 2
  else:
    state_bytes = 3 * tree_bytes(exp.algorithm.init(exp.init_params))
    assert deployed_rows[0]["download_bytes"] == state_bytes
    assert 0 < deployed_rows[1]["download_bytes"] < state_bytes
  a = final_params(config, str(tmp_path / "sim"), 2)
  b = final_params(config, str(tmp_path / "flower"), 2)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=2e-5, rtol=1e-4)
  for name in exp.bundle.cache_files + (("label_map_r0001.npz",) if case == "image" else ()):
    with np.load(tmp_path / "flower" / name) as f, np.load(tmp_path / "sim" / name) as g:
      for key in f.files:  # the set-up the nodes' statistics gave is the simulation's
        np.testing.assert_array_equal(f[key], g[key])
  print(f"\n{case}: loopback run of 2 rounds {wall:.1f} s, "
        f"upload {deployed_rows[0]['upload_bytes']} B/round")
