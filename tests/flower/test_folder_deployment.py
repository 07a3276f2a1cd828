"""A deployment over data that lie where they belong (``data.name='client_folders'``): the
server's root holds ``classes.txt`` and ``test/`` only, node i's root ``classes.txt`` and
its own ``client_<i>/`` only (``tests/helpers/client_folders.py``).

The server's whole loop (``server_app.run_deployment``) runs over an in-process Grid with
the real ClientApp (``tests/helpers/inprocess_grid.py``): every node builds from its own
folder, answers the set-up statistics (the label counts, an ILM re-map before round 2)
and trains; the server opens no client folder. The run equals the simulation over the
whole layout.
"""

import os
import shutil

import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.flower.server_app import run_deployment
from fedbbpt_jax.flower.settings import run_settings
from fedbbpt_jax.train import run
from fedbbpt_jax.train.records import MetricsLog
from tests.helpers.client_folders import record_paths, write_layout
from tests.helpers.inprocess_grid import InProcessGrid
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny



def config(root):
  return tiny(with_overrides(
      fmnist_effnet.get_config("smoke"), data__name="client_folders",
      data__source_dir=str(root), data__partition="natural", train__rounds=2,
      task__remap_every=1, baselines__local_only=False))


def test_nodes_holding_only_their_folder_and_a_server_with_no_training_data_equal_the_simulation(
    tmp_path, monkeypatch):
  everything = tmp_path / "all"
  write_layout(str(everything))
  server_root = tmp_path / "server_data"
  server_root.mkdir()
  shutil.copy(everything / "classes.txt", server_root)
  shutil.copytree(everything / "test", server_root / "test")
  nodes = {}
  for i in range(3):  # node i's machine: the class list and its own folder, nothing else
    root = tmp_path / f"node{i}_data"
    root.mkdir()
    shutil.copy(everything / "classes.txt", root)
    shutil.copytree(everything / f"client_{i}", root / f"client_{i}")
    nodes[i] = {"overrides": f"data.source_dir={root}"}
  run(config(everything), str(tmp_path / "sim"), log=lambda line: None)

  touched = record_paths(monkeypatch, str(server_root))
  grid = InProcessGrid(str(tmp_path / "nodes"), range(3), node_configs=nodes)
  run_deployment(grid, config(server_root), run_settings({"workdir": str(tmp_path / "flower")}),
                 log=lambda line: None)
  # The server read its class list and test set, nothing else (it holds no client folder,
  # and never asked for one).
  assert {p.split(os.sep)[0] for p in touched} == {".", "classes.txt", "test"}
  sim = MetricsLog(str(tmp_path / "sim")).rows()
  got = MetricsLog(str(tmp_path / "flower")).rows()
  assert [r["task_refreshed"] for r in sim if "task_refreshed" in r] == [True]
  for d, s in zip(got, sim, strict=True):
    assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-5)
    assert d["test_accuracy"] == s["test_accuracy"]
    for key in ("cohort", "bb_examples", "bb_calls", "upload_bytes"):
      assert d[key] == s[key], key
  for name in ("label_map.npz", "label_map_r0001.npz"):
    np.testing.assert_array_equal(np.load(tmp_path / "flower" / name)["label_map"],
                                  np.load(tmp_path / "sim" / name)["label_map"])
  kinds = [kind for kind, _ in grid.sent]
  assert kinds[:3] == ["query"] * 3 and kinds.count("train") == 6
  # client sizes, label counts, then the re-map's counts and guard: 4 requests per node
  assert kinds.count("query.setup") == 12
