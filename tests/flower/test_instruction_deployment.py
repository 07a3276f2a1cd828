"""The instruction family deployed: the server's whole loop over an in-process Grid with the
real ClientApp (``tests/helpers/inprocess_grid.py``) and a tiny GPT-2 made in the test as
the open generator and the black-box LLM.

The server holds the exemplars and the test examples only: the clients' training examples
are withheld from it (scoring one raises); each node holds its own and reaches its own copy
of the models through node-local overrides (``llm.*``, ``generator.model_path``). Two
rounds equal the simulation.
"""

import numpy as np
import pytest

from configs.instruction import get_config
from fedbbpt_jax.flower.server_app import run_deployment
from fedbbpt_jax.flower.settings import run_settings
from fedbbpt_jax.tasks.local_setup import local_gather
from fedbbpt_jax.tasks.protocol import NODE, SERVER
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.records import MetricsLog
from tests.helpers.inprocess_grid import InProcessGrid
from tests.helpers.instruction_tasks import write_words_task
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_gpt2 import write_tiny_gpt2



@pytest.fixture(scope="module")
def model(tmp_path_factory):
  return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def words_task(tmp_path_factory):
  return write_words_task(tmp_path_factory.mktemp("task"))


def config(model, words_task):
  c = get_config("smoke")
  c.generator.model_path = c.llm.model_path = str(model)
  return with_overrides(c, task__json_path=words_task, data__train_examples=10,
                        data__test_examples=6, client__batch_size=5, train__rounds=2,
                        zo__sigma=0.5, client__lr=2.0, baselines__local_only=False)


def test_the_server_holds_no_training_data_and_a_node_its_own(model, words_task, tmp_path):
  c = config(model, words_task)
  sim = build_experiment(c, workdir=str(tmp_path / "sim"))
  sizes = tuple(int(n) for n in np.asarray(sim.clients.num_examples))
  server = build_experiment(c, workdir=str(tmp_path / "server"), role=SERVER,
                            client_sizes=sizes, gather=local_gather({}, sim.clients))
  train = range(c.task.exemplars, c.task.exemplars + c.data.train_examples)
  held = server.bundle.blackbox.examples
  assert [i for i, e in enumerate(held) if e is None] == list(train)
  assert all(held[i] == sim.bundle.blackbox.examples[i] for i in range(len(held))
             if i not in train)
  with pytest.raises(ValueError, match=r"examples \[5\] are another party's training"):
    server.bundle.blackbox.predict(np.asarray([[0.0] * server.task.dim + [5.0]]))
  node = build_experiment(c, workdir=str(tmp_path / "node"), role=NODE, partition_id=1)
  own = [int(i) for i in np.asarray(node.clients.x[0])[:int(node.clients.num_examples[0])]]
  n = int(sim.clients.num_examples[1])
  assert own == [int(i) for i in np.asarray(sim.clients.x[1, :n])]
  assert [i for i, e in enumerate(node.bundle.blackbox.examples)
          if e is not None and i in train] == own


def test_a_deployment_with_no_training_data_at_the_server_equals_the_simulation(
    model, words_task, tmp_path):
  c = config(model, words_task)
  simulated = run(c, str(tmp_path / "sim"), log=lambda line: None)
  local = f"llm.model_path={model} generator.model_path={model}"
  grid = InProcessGrid(str(tmp_path / "nodes"), range(2),
                       node_configs={i: {"overrides": local} for i in range(2)})
  deployed = run_deployment(grid, c, run_settings({"workdir": str(tmp_path / "flower")}),
                            log=lambda line: None)
  got, sim = (MetricsLog(str(tmp_path / w)).rows() for w in ("flower", "sim"))
  for d, s in zip(got, sim, strict=True):
    assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-6)
    for key in ("cohort", "bb_examples", "bb_calls", "test_accuracy", "test_loss"):
      assert d[key] == s[key], key
  assert deployed["instruction"] == simulated["instruction"]
  assert [kind for kind, _ in grid.sent].count("train") == 4
