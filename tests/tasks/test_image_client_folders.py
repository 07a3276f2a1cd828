"""The image family on a dataset whose clients are folders (``client_folders``,
``data.partition='natural'``): a simulation holds every folder as its client, a node
reads only its own folder, a server only the test set and the class names; the same
task in every role, and config errors that name the fields.
"""

import json
import os
import shutil

import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.tasks.local_setup import local_gather
from fedbbpt_jax.tasks.protocol import NODE, SERVER
from fedbbpt_jax.train import run, validate_config
from fedbbpt_jax.train.build import build_experiment
from tests.helpers.client_folders import record_paths, write_classes, write_layout
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny


def config(root, **overrides):
  return tiny(with_overrides(fmnist_effnet.get_config("smoke"), **{
      "data__name": "client_folders", "data__source_dir": str(root),
      "data__partition": "natural", **overrides}))


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
  """The whole layout, and the simulation built over it."""
  root = tmp_path_factory.mktemp("folders")
  written = write_layout(str(root))
  workdir = tmp_path_factory.mktemp("sim")
  return root, written, build_experiment(config(root), workdir=str(workdir))


def test_a_simulation_holds_every_client_folder_as_its_client(sim):
  root, written, exp = sim
  validate_config(config(root))
  assert np.asarray(exp.clients.num_examples).tolist() == [40, 30, 50]
  for i, (x, y) in enumerate(written["clients"]):
    np.testing.assert_array_equal(exp.clients.x[i, :len(y)], x)
    np.testing.assert_array_equal(exp.clients.y[i, :len(y)], y)
    assert not np.asarray(exp.clients.x[i, len(y):]).any()  # padding
  np.testing.assert_array_equal(exp.test_x, written["test"][0])
  np.testing.assert_array_equal(exp.test_y, written["test"][1])
  assert exp.num_clients == 3 and exp.task.num_classes == 10
  counts = np.stack([np.bincount(y, minlength=10) for _, y in written["clients"]])
  np.testing.assert_array_equal(exp.label_histograms, counts)


def test_a_node_reads_only_its_own_folder(sim, tmp_path, monkeypatch):
  root, _, exp = sim
  mine = tmp_path / "node_root"  # what node 1 holds: the class names and its folder
  write_classes(str(mine))
  shutil.copytree(root / "client_1", mine / "client_1")
  workdir = tmp_path / "node"
  workdir.mkdir()
  seen = record_paths(monkeypatch, mine)
  node = build_experiment(config(mine), workdir=str(workdir), role=NODE, partition_id=1)
  # (the loader looks for test/ and finds none: a node needs it only to evaluate)
  assert {p.split(os.sep)[0] for p in seen} == {".", "classes.txt", "client_1", "test"}
  assert [p for p in seen if p.startswith("test")] == ["test"]
  assert sum(p.endswith(".png") for p in seen) == 30  # each of its images read once
  assert node.clients.x.shape[:2] == (1, 30) and int(node.clients.num_examples[0]) == 30
  np.testing.assert_array_equal(node.clients.x[0], exp.clients.x[1, :30])
  np.testing.assert_array_equal(node.clients.y[0], exp.clients.y[1, :30])
  np.testing.assert_array_equal(node.label_histograms, exp.label_histograms[1:2])
  assert node.num_clients == 3 and node.task.num_classes == 10
  assert node.test_x.shape == (0, 8, 8) and node.test_y.shape == (0,)  # no test folder


def test_a_server_reads_only_the_test_set_and_derives_the_simulations_mapping(
    sim, tmp_path, monkeypatch):
  root, written, exp = sim
  public = tmp_path / "server_root"  # what the server holds
  write_classes(str(public))
  shutil.copytree(root / "test", public / "test")
  workdir = tmp_path / "server"
  workdir.mkdir()
  seen = record_paths(monkeypatch, public)
  sizes = tuple(int(n) for n in np.asarray(exp.clients.num_examples))
  server = build_experiment(config(public), workdir=str(workdir), role=SERVER,
                            client_sizes=sizes,
                            gather=local_gather(exp.bundle.statistics, exp.clients))
  assert {p.split(os.sep)[0] for p in seen} == {".", "classes.txt", "test"}
  np.testing.assert_array_equal(server.task.label_map, exp.task.label_map)
  np.testing.assert_array_equal(server.test_x, written["test"][0])
  assert np.asarray(server.clients.num_examples).tolist() == [40, 30, 50]


def test_config_errors_name_the_fields(sim, tmp_path):
  root, _, _ = sim
  with pytest.raises(ConfigError, match=(
      "config.data.num_clients=4: config.data.name='client_folders' holds 3 clients "
      "\\(config.data.partition='natural' takes them all\\): set config.data.num_clients=3")):
    build_experiment(config(root, data__num_clients=4))
  with pytest.raises(ConfigError, match=(
      "config.data.partition='dirichlet': config.data.name='client_folders' holds its "
      "clients apart .* set config.data.partition='natural'")):
    validate_config(config(root, data__partition="dirichlet"))
  with pytest.raises(ConfigError, match=(
      "config.data.partition='natural' takes the dataset's own clients, and "
      "config.data.name='digits' has none")):
    validate_config(config(root, data__name="digits"))
  no_test = tmp_path / "no_test"
  write_classes(str(no_test))
  shutil.copytree(root / "client_0", no_test / "client_0")
  with pytest.raises(ConfigError, match=(
      f"config.data.name='client_folders' \\(config.data.source_dir='{no_test}'\\) gives no "
      "test split: a simulation needs the test set")):
    build_experiment(config(no_test, data__num_clients=1))


def test_two_rounds_on_client_folders_write_a_summary(sim, tmp_path):
  root, _, _ = sim
  c = config(root, train__rounds=2, baselines__local_only=False)
  validate_config(c)
  summary = run(c, str(tmp_path), log=lambda *a: None)
  with open(tmp_path / "summary.json") as f:
    assert json.load(f) == summary
  assert (summary["rounds"], summary["num_clients"], summary["test_examples"]) == (2, 3, 60)
  assert summary["test_split"] == "client_folders test, all 60 examples"
  assert summary["label_histograms"] == np.asarray(sim[2].label_histograms).tolist()
