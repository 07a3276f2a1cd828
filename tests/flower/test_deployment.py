"""A real Flower deployment on loopback (``tests/helpers/flower_loopback.py``: SuperLink,
3 SuperNodes, one partition and API key each, the model provider's services of the tiny
image and text models, ``flwr run``) whose server holds no training data: its plugin
(``tests/helpers/server_plugins.py``) makes reading the datasets' training splits raise,
so the set-up can only come from the nodes' statistics.

Three runs of 2 rounds, at once on the federation: the image defaults (the frequency label
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

The third run is the instruction family (a tiny GPT-2 made here as the open generator and,
behind the provider's chat service, as the black-box LLM): the server generates the
instructions and scores only the test examples; every node scores its own training
examples on the chat service with its own key; it equals the simulation.
"""

import concurrent.futures
import json
import os
import time
import types


import jax
import numpy as np
import pytest

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.data import local_test_parts
from fedbbpt_jax.flower.settings import load_config
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.federated.algorithms.algorithm import tree_bytes
from fedbbpt_jax.flower.node import activation_counters
from fedbbpt_jax.serve.chat import create_chat_app
from fedbbpt_jax.serve.keys import KeyStore
from tests.helpers.flower_loopback import (COMMON, KEYS, NODES, SERVER_PLUGINS,  # noqa: F401
                                           deployment, federation, final_params, node_extra,
                                           rows, services, usage, usage_record)
from tests.helpers.instruction_tasks import write_words_task
from tests.helpers.threaded_server import serving
from tests.helpers.tiny_gpt2 import write_tiny_gpt2
from tests.helpers.tiny_models import IMAGE, TEXT

pytestmark = pytest.mark.slow  # make test-quick leaves it out


# The image defaults (frequency label mapping, ILM re-map before round 2) with dense
# uploads and downloads; the text track (BDPL, candidate vocabulary from the nodes'
# word counts) with seed-and-scalar uploads and downloads.
INSTRUCTION = "instruction"
CASES = {
    "image": ("configs/fmnist_effnet.py:smoke", IMAGE, "dense",
              "data.test_examples=192 train.eval_batch_size=96 task.remap_every=1 "
              "train.evaluation=both"),
    "text": ("configs/drug_minilm.py:smoke", TEXT, "seeds", "train.evaluation=central"),
}


@pytest.fixture(scope="module")
def models():
  return (IMAGE, TEXT)


# The instruction family: the open generator (a tiny GPT-2 made here) is a file every party
# reads; the black-box LLM is the provider's chat service, which every node calls with its
# own key (node config `blackbox-url` and `api-key-env` set the family's `llm.url` and
# `llm.api_key_env`); the simulation calls it with a key of its own.
CHAT_KEYS = {**KEYS, "sim-key": None}


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
  """``(service, tiny GPT-2 folder, task JSON)``: the chat service in a thread here."""
  folder = write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))
  task = write_words_task(tmp_path_factory.mktemp("task"))
  app = create_chat_app(LocalChatLLM(str(folder), name="tiny-gpt2"), KeyStore(CHAT_KEYS))
  with serving(app) as url:
    yield types.SimpleNamespace(url=url), str(folder), task


def instruction_overrides(chat, key_env):
  service, folder, task = chat
  return (f"train.rounds=2 baselines.local_only=false data.num_clients={NODES} "
          f"task.json_path={task} data.train_examples=9 data.test_examples=6 "
          f"client.batch_size=3 zo.sigma=0.5 client.lr=2.0 generator.model_path={folder} "
          f"llm.url={service.url} llm.model=tiny-gpt2 llm.api_key_env={key_env}")


@pytest.fixture(scope="module")
def deployed(federation, services, chat, tmp_path_factory):
  """The three deployments run at once on the federation (three `flwr run`s: their waits
  for the nodes overlap) while the simulations run here, one after the other, on the
  server's key (the instruction run: a key of its own). ``{case: {config, workdir,
  simulation's workdir and summary, stdout, wall, each node key's usage of the case's
  service, ...}}``."""
  root = tmp_path_factory.mktemp("deployed")
  runs = {}
  services = {**services, INSTRUCTION: chat[0]}
  for case, (config_spec, model, upload, extra) in CASES.items():
    overrides = (f"{COMMON} blackbox.model={model} blackbox.url={services[model].url} "
                 f"client.upload={upload} {extra}")
    runs[case] = dict(spec=config_spec, model=model, upload=upload, overrides=overrides,
                      workdir=root / case / "flower", sim=root / case / "sim")
  runs[INSTRUCTION] = dict(spec="configs/instruction.py:smoke", model=INSTRUCTION,
                           upload="dense",
                           overrides=instruction_overrides(chat, "FEDBBPT_SERVER_KEY"),
                           sim_overrides=instruction_overrides(chat, "FEDBBPT_SIM_KEY"),
                           workdir=root / "instruction" / "flower",
                           sim=root / "instruction" / "sim")
  for r in runs.values():
    r["before"] = [usage(services[r["model"]], f"node-key-{i}") for i in range(NODES)]

  def deploy(r):
    t0 = time.time()
    out = federation.run({"config": r["spec"], "imports": SERVER_PLUGINS,
                          "overrides": r["overrides"], "workdir": str(r["workdir"]),
                          "round-timeout": 300.0,
                          "download": r["upload"]})  # seeds: nodes replay the rounds themselves
    return out, time.time() - t0

  saved = {name: os.environ.get(name) for name in ("FEDBBPT_SERVER_KEY", "FEDBBPT_SIM_KEY")}
  with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
    deploying = {case: pool.submit(deploy, r) for case, r in runs.items()}
    os.environ["FEDBBPT_SERVER_KEY"] = "server-key"  # (the server's key: no node's)
    os.environ["FEDBBPT_SIM_KEY"] = "sim-key"
    try:
      for r in runs.values():
        r["config"] = load_config(r["spec"], r["overrides"])
        sim_config = load_config(r["spec"], r.get("sim_overrides", r["overrides"]))
        r["summary"] = run(sim_config, str(r["sim"]), log=lambda line: None)
    finally:
      for name, value in saved.items():
        if value is None:
          os.environ.pop(name, None)
        else:
          os.environ[name] = value
    for case, future in deploying.items():
      runs[case]["out"], runs[case]["wall"] = future.result()
  for r in runs.values():
    r["used"] = [usage(services[r["model"]], f"node-key-{i}") - r["before"][i]
                 for i in range(NODES)]
  return runs


def test_the_instruction_family_deployed_with_each_nodes_llm_key_equals_simulation(
    deployed, chat):
  """Three nodes, each holding only its own training examples, score the round's
  instructions on the provider's chat service with their own keys; the server (its own
  key) generates the instructions and scores only the test examples. Two rounds equal the
  simulation: losses, cohorts, rows, test scores, the final instruction."""
  r = deployed[INSTRUCTION]
  assert "final accuracy" in r["out"].stdout, r["out"].stdout[-3000:]
  got, sim = rows(r["workdir"]), rows(r["sim"])
  for d, s in zip(got, sim, strict=True):
    assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-6)
    for key in ("cohort", "bb_examples", "bb_calls", "test_accuracy", "test_loss"):
      assert d[key] == s[key], key
    assert d["nodes_missing"] == 0 and d["survivors"] == NODES
  summary = json.loads((r["workdir"] / "summary.json").read_text())
  assert summary["instruction"] == r["summary"]["instruction"]
  # The server's key made exactly the requests the server counted (its evaluations of the
  # test examples); the nodes' keys made the rest of the simulation's requests (one process
  # there: the same (instruction, example) pairs, each example held by one client), each
  # node some, with its tokens on its own key.
  server = usage_record(chat[0], "server-key")["requests"]
  assert server == summary["llm_requests"] > 0
  requests = [usage_record(chat[0], f"node-key-{i}")["requests"] for i in range(NODES)]
  assert sum(requests) == r["summary"]["llm_requests"] - summary["llm_requests"], requests
  assert all(n > 0 for n in requests) and all(u > 0 for u in r["used"]), (requests, r["used"])
  assert sum(requests) <= got[-1]["bb_examples"]  # at most one request per training row


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
      for key in ("fed_test_examples", "fed_test_clients", "fed_test_upload_bytes",
                  "fed_test_download_bytes"):
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
