"""The loopback Flower deployment the tests in ``tests/flower/test_deployment*.py`` share:
the model provider service and a federation of 3 SuperNodes (module-scoped fixtures,
started side by side: each test file starts its own, so the files run on different
workers), and readers of a run's rows and checkpoints. Every process is stopped by its
PID when the module ends, also when a test fails (the fixture asserts none is left).

The black box is the tiny test CNN, loaded everywhere the way a user loads their own
model: the service, the ServerApp (run config ``imports``) and every SuperNode (node
config ``imports``) import ``tests.helpers.tiny_plugins``, which registers it.
"""

import concurrent.futures
import json
import os

import httpx
import pytest

from fedbbpt_jax.flower.loopback import LoopbackFederation
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers import tiny_plugins  # noqa: F401  (registers tiny_cnn in this process too)
from tests.helpers.tiny_models import IMAGE
from tests.helpers.tiny_service import PLUGINS, tiny_service_process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NODES = 3
BASE = (f"train.rounds=2 data.test_examples=192 train.eval_batch_size=96 "
        f"baselines.local_only=false blackbox.api_key_env=FEDBBPT_SERVER_KEY "
        f"blackbox.backoff_seconds=0.05 blackbox.model={IMAGE}")
RUN = {"config": "configs/fmnist_effnet.py:smoke", "imports": PLUGINS}  # + overrides, workdir
# The server's plugin in the runs that hold it to no training data (its training splits raise).
SERVER_PLUGINS = "tests.helpers.server_plugins"
KEYS = {"server-key": None, **{f"node-key-{i}": None for i in range(NODES)}}
ENV = {"FEDBBPT_SERVER_KEY": "server-key", "PYTHONPATH": ROOT,  # the plugins are importable
       **{f"FEDBBPT_NODE_KEY_{i}": f"node-key-{i}" for i in range(NODES)}}
PER_STEP = 4 * 8  # candidates x batch of one client step
STEPS = 3


@pytest.fixture(scope="module")
def node_extra():
  """Extra ``--node-config`` entries by partition (a test module overrides this fixture,
  e.g. to make one node a straggler from the start)."""
  return {}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, node_extra):
  """``(service, federation)``: the provider service starts in a thread while the
  SuperLink and the SuperNodes come up (the nodes only need its URL)."""
  keys = tmp_path_factory.mktemp("keys") / "keys.json"
  keys.write_text(json.dumps(KEYS))
  service = tiny_service_process(IMAGE, input_size=32, max_batch=16, keys_path=str(keys))
  home = tmp_path_factory.mktemp("flwr_home")
  nodes = [{"partition-id": i, "workdir": str(home / f"node{i}"), "blackbox-url": service.url,
            "api-key-env": f"FEDBBPT_NODE_KEY_{i}", "imports": PLUGINS, **node_extra.get(i, {})}
           for i in range(NODES)]
  fed = LoopbackFederation(str(home), nodes, env=ENV)
  try:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      started = pool.submit(service.start)
      fed.start()
      started.result()
    yield service, fed
  finally:
    pids = fed.pids()
    fed.stop()
    service.stop()
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")
                and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"]
  os.remove(service.log_path)  # kept when the set-up or the stop failed, for its log


@pytest.fixture(scope="module")
def service(deployment):
  return deployment[0]


@pytest.fixture(scope="module")
def federation(deployment):
  return deployment[1]


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


