"""A real Flower deployment on loopback: SuperLink, 3 SuperNodes (one partition each,
each with its own API key), the model provider service, ``flwr run``.

* 2 rounds with dense and with seed-and-scalar uploads (and downloads: the nodes
  replay round 1 themselves, keeping the state between their ClientApp processes) end
  at the generator of the in-process simulation with the same config and seed (float
  tolerance), with the same metrics, upload traffic and query counts; the provider
  charged each node's key exactly that node's queries.
* A SuperNode killed during a round: the round completes with the other two, the run
  goes on; a restarted server resumes from its checkpoint without losing a row.

Every process is stopped by its PID when the module ends, also when a test fails.
The smoke experiment is trimmed as in ``tests/blackbox/test_remote.py``, so every
request the service computes holds exactly 16 examples (one compiled bucket, and the
same rows per request in simulation and deployment).
"""

import json
import os
import time

import httpx
import jax
import numpy as np
import pytest

from fedbbpt_jax.flower.loopback import LoopbackFederation
from fedbbpt_jax.flower.settings import load_config
from fedbbpt_jax.serve.process import ServiceProcess
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer

NODES = 3
BASE = ("train.rounds=2 data.test_examples=192 train.eval_batch_size=96 "
        "baselines.local_only=false blackbox.api_key_env=FEDBBPT_SERVER_KEY "
        "blackbox.backoff_seconds=0.05")
KEYS = {"server-key": None, **{f"node-key-{i}": None for i in range(NODES)}}
ENV = {"FEDBBPT_SERVER_KEY": "server-key",
       **{f"FEDBBPT_NODE_KEY_{i}": f"node-key-{i}" for i in range(NODES)}}
PER_STEP = 4 * 8  # candidates x batch of one client step
STEPS = 3


@pytest.fixture(scope="module")
def service(tmp_path_factory):
  keys = tmp_path_factory.mktemp("keys") / "keys.json"
  keys.write_text(json.dumps(KEYS))
  with ServiceProcess(input_size=32, max_batch=16, keys_path=str(keys)) as s:
    yield s


@pytest.fixture(scope="module")
def federation(tmp_path_factory, service):
  home = tmp_path_factory.mktemp("flwr_home")
  nodes = [{"partition-id": i, "workdir": str(home / f"node{i}"), "blackbox-url": service.url,
            "api-key-env": f"FEDBBPT_NODE_KEY_{i}"} for i in range(NODES)]
  fed = LoopbackFederation(str(home), nodes, env=ENV)
  try:
    fed.start()
    yield fed
  finally:
    pids = fed.pids()
    fed.stop()
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")
                and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"]


def usage(service, key):
  return httpx.get(service.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"},
                   timeout=10).json()["used"]


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def final_params(config, workdir, round_idx):
  exp = build_experiment(config, workdir=workdir)
  state, _ = RoundCheckpointer(workdir).restore(round_idx, exp.algorithm.init(exp.init_params))
  return state.params


@pytest.mark.parametrize("upload", ["dense", "seeds"])
def test_deployment_equals_simulation(federation, service, tmp_path, monkeypatch, upload):
  overrides = f"{BASE} blackbox.url={service.url} client.upload={upload}"
  before = [usage(service, f"node-key-{i}") for i in range(NODES)]
  t0 = time.time()
  out = federation.run({"config": "configs/fmnist_effnet.py:smoke", "overrides": overrides,
                        "workdir": str(tmp_path / "flower"), "round-timeout": 300.0,
                        "download": upload})  # seeds: nodes replay the rounds themselves
  wall = time.time() - t0
  assert "final accuracy" in out.stdout, out.stdout[-3000:]
  used = [usage(service, f"node-key-{i}") - before[i] for i in range(NODES)]
  assert used == [2 * STEPS * PER_STEP] * NODES  # every node paid for its own queries

  monkeypatch.setenv("FEDBBPT_SERVER_KEY", "server-key")
  config = load_config("configs/fmnist_effnet.py:smoke", overrides)
  run(config, str(tmp_path / "sim"))
  deployed, simulated = rows(tmp_path / "flower"), rows(tmp_path / "sim")
  for d, s in zip(deployed, simulated, strict=True):
    assert d["cohort"] == s["cohort"]
    assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
    assert d["test_accuracy"] == pytest.approx(s["test_accuracy"], abs=1 / 192)
    for key in ("upload_bytes", "bb_examples", "bb_calls"):
      assert d[key] == s[key], key
    assert d["nodes_missing"] == 0 and d["survivors"] == NODES
  # Downloads: the global model (192 float32) to 3 nodes; with seeds, the whole state
  # (+ its round, 772 B) the first time, then round 1's record: keys 3 x 8, losses
  # 3 x 3 x 4 x 4, counts, ids, flags 3 x (4 + 4 + 1) = 195 B to each node.
  want = [3 * 768] * 2 if upload == "dense" else [3 * 772, 3 * 195]
  assert [r["download_bytes"] for r in deployed] == want
  assert [r["download_bytes"] for r in simulated] == [3 * 768] * 2
  a = final_params(config, str(tmp_path / "sim"), 2)
  b = final_params(config, str(tmp_path / "flower"), 2)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=2e-5, rtol=1e-4)
  print(f"\n{upload}: loopback run of 2 rounds {wall:.1f} s, "
        f"upload {deployed[0]['upload_bytes']} B/round")


def test_killed_node_and_server_resume(federation, service, tmp_path):
  workdir = str(tmp_path / "flower")
  overrides = f"{BASE} blackbox.url={service.url}"
  slow = dict(federation.node_configs[2], **{"train-delay-seconds": 600.0})
  federation.node_configs[2] = slow
  federation.kill_node(2)
  federation.start_node(2)  # partition 2 now hangs in training: killed mid-round below
  run_config = {"config": "configs/fmnist_effnet.py:smoke", "overrides": overrides,
                "workdir": workdir, "round-timeout": 40.0, "min-nodes": NODES}
  background = federation.start_run(run_config)
  try:
    log = federation.logs["supernode2"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # node 2 has received its round-1 work
      if "train message" in open(log, errors="replace").read().lower():
        break
      time.sleep(0.5)
    else:
      pytest.fail("node 2 never received its training message")
    federation.kill_node(2)
    background.wait(timeout=300)
  finally:
    if background.poll() is None:
      background.kill()
  first = rows(workdir)
  assert [r["round"] for r in first] == [1, 2]
  assert [(r["survivors"], r["nodes_missing"]) for r in first] == [(2, 1), (2, 1)]
  assert all(np.isfinite(r["train_loss"]) for r in first)
  # The meter counts what the nodes that answered reported: the label mapping
  # (3 clients x 10 images), then 2 nodes x 3 steps x 32 examples a round.
  assert [r["bb_examples"] for r in first] == [30 + 2 * STEPS * PER_STEP,
                                               30 + 4 * STEPS * PER_STEP]

  # A restarted server (a new `flwr run`, same workdir) resumes after round 2.
  run_config.update(overrides=overrides.replace("train.rounds=2", "train.rounds=3"),
                    **{"min-nodes": 2, "round-timeout": 60.0})
  out = federation.run(run_config)
  assert "resuming after round 2" in out.stdout, out.stdout[-3000:]
  after = rows(workdir)
  assert after[:2] == first  # nothing written before is lost
  assert after[2]["round"] == 3 and after[2]["survivors"] == 2
  assert RoundCheckpointer(workdir).rounds() == [1, 2, 3]
