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
from tests.helpers.tiny_models import IMAGE, TEXT
from tests.helpers.tiny_service import PLUGINS, tiny_service_process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NODES = 3
# Every deployed run's overrides: 2 rounds, no local-only baseline (it needs every
# client's data at the server), the server's own key for its queries.
COMMON = ("train.rounds=2 baselines.local_only=false blackbox.api_key_env=FEDBBPT_SERVER_KEY "
          "blackbox.backoff_seconds=0.05")
BASE = (f"{COMMON} data.test_examples=192 train.eval_batch_size=96 "
        f"blackbox.model={IMAGE}")
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
def models():
  """The tiny models the module's provider serves, one service each (a test module
  overrides this fixture to serve the text model too)."""
  return (IMAGE,)


def provider(model, keys):
  """The provider's service of ``model`` (``max_length`` 24 for the text model, as the
  text smoke config asks; 16 examples a request)."""
  if model == TEXT:
    return tiny_service_process(TEXT, max_batch=16, keys_path=keys,
                                extra_args=("--max_length=24",))
  return tiny_service_process(IMAGE, input_size=32, max_batch=16, keys_path=keys)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, node_extra, models):
  """``({model: service}, federation)``: the provider's services start in threads while
  the SuperLink and the SuperNodes come up. A node reaches the provider at the URL of
  the run's config (``blackbox.url``) with its own key (node config ``api-key-env``)."""
  keys = tmp_path_factory.mktemp("keys") / "keys.json"
  keys.write_text(json.dumps(KEYS))
  services = {model: provider(model, str(keys)) for model in models}
  home = tmp_path_factory.mktemp("flwr_home")
  nodes = [{"partition-id": i, "workdir": str(home / f"node{i}"),
            "api-key-env": f"FEDBBPT_NODE_KEY_{i}", "imports": PLUGINS, **node_extra.get(i, {})}
           for i in range(NODES)]
  fed = LoopbackFederation(str(home), nodes, env=ENV)
  try:
    with concurrent.futures.ThreadPoolExecutor(len(services)) as pool:
      started = [pool.submit(s.start) for s in services.values()]
      fed.start()
      for future in started:
        future.result()
    yield services, fed
  finally:
    pids = fed.pids()
    fed.stop()
    for s in services.values():
      s.stop()
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")
                and open(f"/proc/{p}/stat").read().split(")")[-1].split()[0] != "Z"]
  for s in services.values():
    os.remove(s.log_path)  # kept when the set-up or the stop failed, for its log


@pytest.fixture(scope="module")
def services(deployment):
  return deployment[0]


@pytest.fixture(scope="module")
def service(deployment):
  """The image model's service."""
  return deployment[0][IMAGE]


@pytest.fixture(scope="module")
def federation(deployment):
  return deployment[1]


def usage_record(service, key):
  """The service's ``/v1/usage`` record of ``key`` (``used``, ``requests``, ...)."""
  return httpx.get(service.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"},
                   timeout=10).json()


def usage(service, key):
  return usage_record(service, key)["used"]


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def final_params(config, workdir, round_idx):
  exp = build_experiment(config, workdir=workdir)
  state, _ = RoundCheckpointer(workdir).restore(round_idx, exp.algorithm.init(exp.init_params))
  return state.params


