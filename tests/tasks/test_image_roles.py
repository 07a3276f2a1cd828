"""The image family built where the data lie (``BuildOptions.role``): a server that holds
no training data, asking the clients for their set-up statistics, derives exactly the
simulation's task; a node holds its own client only.

The server's training split raises when read (``tests/helpers/split_guard.py``); its
gather is the clients' own statistics (``local_gather``), the computation a deployment's
nodes run (``tests/flower/test_deployment.py`` runs it over Flower).
"""

import shutil

import jax
import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.tasks.local_setup import client_row, local_gather
from fedbbpt_jax.tasks.protocol import NODE, SERVER
from fedbbpt_jax.train.build import build_experiment
from tests.helpers import split_guard
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

# ILM on (re-map before rounds 3 and 5), accepting a re-map only if it is not worse.
SMOKE = dict(task__remap_every=2)


def workdir(tmp_path, name):
  (tmp_path / name).mkdir()
  return str(tmp_path / name)


def config(**overrides):
  return tiny(with_overrides(fmnist_effnet.get_config("smoke"), **{**SMOKE, **overrides}))


@pytest.fixture
def guard():
  """Puts the guarded loaders in place (``guard.on()``) and the real ones back after."""
  replaced = []

  class Guard:
    def on(self):
      replaced.append(split_guard.guard())

  yield Guard()
  for r in replaced:
    split_guard.unguard(r)


@pytest.mark.parametrize("kind", ["frame", "frame_mixture"])
def test_a_server_with_no_training_data_derives_the_simulations_set_up(tmp_path, guard, kind):
  c = config(prompt__kind=kind)
  sim = build_experiment(c, workdir=workdir(tmp_path, "sim"))
  guard.on()
  with pytest.raises(split_guard.TrainingDataRead):
    build_experiment(c, workdir=workdir(tmp_path, "x"))  # the guard holds in a simulation
  asked = []
  clients_gather = local_gather(sim.bundle.statistics, sim.clients)

  def gather(name, request):
    asked.append(name)
    return clients_gather(name, request)

  sizes = tuple(int(n) for n in np.asarray(sim.clients.num_examples))
  server = build_experiment(c, workdir=workdir(tmp_path, "server"), role=SERVER,
                            client_sizes=sizes, gather=gather)
  assert asked == (["feature_sums"] if kind == "frame_mixture" else []) + ["label_counts"]
  np.testing.assert_array_equal(server.task.label_map, sim.task.label_map)
  assert (server.bundle.setup_examples, server.bundle.setup_calls) == (30, 3)
  assert (sim.bundle.setup_examples, sim.bundle.setup_calls) == (30, 3)
  np.testing.assert_array_equal(server.test_x, sim.test_x)
  assert np.asarray(server.clients.num_examples).tolist() == list(sizes)
  assert server.clients.x.shape[1] == 1 and not np.asarray(server.clients.x).any()
  assert server.label_histograms is None and server.bundle.statistics == {}
  # The same prompt: the same centre (frame_mixture) gives the same logits.
  params = server.init_params
  np.testing.assert_array_equal(np.asarray(server.task.logits(params, sim.test_x[:8])),
                                np.asarray(sim.task.logits(params, sim.test_x[:8])))
  # ILM before round 2: the server's re-map from the clients' counts and guard equals the
  # simulation's, at the same cost.
  moved = jax.tree.map(lambda a: a + 0.5, params)
  a = sim.bundle.refresh(moved, 2, None)
  b = server.bundle.refresh(moved, 2, None)
  np.testing.assert_array_equal(a.task.label_map, b.task.label_map)
  assert (a.examples, a.calls) == (b.examples, b.calls) == (30, 3)
  assert asked[-2:] == ["remap_counts", "remap_correct"]


def test_a_node_holds_its_own_client_and_the_servers_set_up(tmp_path):
  c = config()
  sim = build_experiment(c, workdir=workdir(tmp_path, "sim"))
  node_dir = tmp_path / "node"
  node_dir.mkdir()
  gathering = build_experiment(c, workdir=str(node_dir), role=NODE, partition_id=1)
  assert not np.asarray(gathering.task.label_map).any()  # placeholder: no file yet
  shutil.copy(tmp_path / "sim" / "label_map.npz", node_dir / "label_map.npz")
  node = build_experiment(c, workdir=str(node_dir), role=NODE, partition_id=1)
  np.testing.assert_array_equal(node.task.label_map, sim.task.label_map)
  n = int(sim.clients.num_examples[1])
  assert node.clients.x.shape[0] == 1 and int(node.clients.num_examples[0]) == n
  assert node.clients.x.shape[1] == n  # packed to its own size: no other client's rows
  np.testing.assert_array_equal(node.clients.x[0], sim.clients.x[1, :n])
  np.testing.assert_array_equal(node.clients.y[0], sim.clients.y[1, :n])
  assert node.num_clients == 3 and node.cohort_size == sim.cohort_size
  np.testing.assert_array_equal(node.label_histograms, sim.label_histograms[1:2])
  # The node's statistic on its own client is the simulation's for that client.
  mine = node.bundle.statistics["label_counts"](client_row(node.clients, 0), {}, {})
  theirs = local_gather(sim.bundle.statistics, sim.clients)("label_counts", {})[1]
  np.testing.assert_array_equal(mine["counts"], theirs["counts"])
  assert (int(mine["examples"]), int(mine["calls"])) == (10, 1)
