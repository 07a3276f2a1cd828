"""The text family built by role (``BuildOptions.role``) on the tiny text black box: a
deployment's server (no training text read; the vocabulary from the clients' counts) and
a node (its own client only; the server's vocabulary file) against a simulation."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from configs import drug_minilm
from fedbbpt_jax.blackbox.text_zoo import make_text_tokenizer
from fedbbpt_jax.data import DATASETS, client_parts, register_dataset
from fedbbpt_jax.data.registry import TEXT
from fedbbpt_jax.tasks.local_setup import client_row, local_gather, read_setup_file
from fedbbpt_jax.prompts.vocabulary import flatten_to_token_ids
from fedbbpt_jax.tasks.protocol import NODE, SERVER, BuildOptions
from fedbbpt_jax.tasks.text import build_text_task
from fedbbpt_jax.tasks.text.prompt_kinds import CLASS_EMBEDDINGS_FILE
from fedbbpt_jax.tasks.text.candidate_vocabulary import VOCABULARY_FILE, special_ids
from fedbbpt_jax.tasks.text.setup_statistics import WORD_COUNTS
from tests.helpers.tiny_models import tiny
from tests.tasks.test_text_setup_statistics import pooled_frequent_words

SEALED = "drug_reviews_train_sealed"
sealed = {"on": False}


class TrainSealed:
  """The drug reviews, whose training texts and labels raise while ``sealed['on']``."""

  def __init__(self, data):
    self._data = data

  def __getattr__(self, name):
    if sealed["on"] and name.startswith("train"):
      raise AssertionError(f"the server read the dataset's {name}")
    return getattr(self._data, name)


@pytest.fixture(scope="module")
def dataset():
  register_dataset(SEALED, lambda dcfg: TrainSealed(DATASETS.get("drug_reviews")(dcfg)), kind=TEXT,
                   overwrite=True)
  yield SEALED
  DATASETS.unregister(SEALED)


def config_of(mode, dataset):
  config = tiny(drug_minilm.get_config(mode))
  config.data.name = dataset
  return config


def prompt_vocabulary(bundle):
  """The candidate ids the built discrete prompt offers, in order."""
  n = bundle.init_prompt(None)["probs"].shape[1]
  return np.asarray(bundle.task.prompt.apply({"probs": jnp.eye(n)}, None))


@pytest.fixture(scope="module")
def simulation(dataset, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("simulation"))
  return build_text_task(config_of("smoke", dataset), BuildOptions(workdir=workdir)), workdir


def test_the_simulation_keeps_the_pooled_vocabulary_of_the_smoke_config(simulation):
  """Min count 2 (the default) leaves the smoke run's candidates as they were: BDPL's
  frequent words of the pooled client texts, in order."""
  sim, sim_dir = simulation
  config = drug_minilm.get_config("smoke")
  assert config.prompt.vocabulary_min_count == 2
  ds = DATASETS.get("drug_reviews")(config.data)
  pooled = [ds.train_texts[i] for p in client_parts(ds.train_labels, config.data) for i in p]
  tok = make_text_tokenizer(config.blackbox.model, config.blackbox.max_length)
  old = flatten_to_token_ids(pooled_frequent_words(pooled), tok.pieces, 30, special_ids(tok))
  np.testing.assert_array_equal(read_setup_file(sim_dir, VOCABULARY_FILE), old)
  np.testing.assert_array_equal(prompt_vocabulary(sim), old)
  assert sim.describe(sim.init_prompt(None))["candidate_vocabulary_size"] == 30


def server_build(config, workdir, bundle, asked):
  """A server build whose clients answer with ``bundle``'s statistics (``local_gather``)."""
  answer = local_gather(bundle.statistics, bundle.clients)

  def gather(name, request):
    asked.append(name)
    return answer(name, request)

  sizes = tuple(int(n) for n in np.asarray(bundle.clients.num_examples))
  sealed["on"] = True
  try:
    return build_text_task(config, BuildOptions(workdir=workdir, role=SERVER,
                                                client_sizes=sizes, gather=gather))
  finally:
    sealed["on"] = False


def test_a_server_build_with_no_training_data_equals_the_simulation(simulation, dataset,
                                                                   tmp_path):
  sim, sim_dir = simulation
  asked = []
  server = server_build(config_of("smoke", dataset), str(tmp_path), sim, asked)
  assert asked == [WORD_COUNTS]
  np.testing.assert_array_equal(read_setup_file(str(tmp_path), VOCABULARY_FILE),
                                read_setup_file(sim_dir, VOCABULARY_FILE))
  np.testing.assert_array_equal(prompt_vocabulary(server), prompt_vocabulary(sim))
  np.testing.assert_array_equal(server.task.class_embeddings, sim.task.class_embeddings)
  np.testing.assert_array_equal(server.test_x, sim.test_x)
  np.testing.assert_array_equal(server.test_y, sim.test_y)
  assert server.test_split == sim.test_split
  assert np.asarray(server.clients.num_examples).tolist() == [104, 103, 103]
  assert server.clients.x.shape == (3, 1, sim.test_x.shape[1])  # stand-ins, never trained on
  assert server.label_histograms is None and server.statistics == {}
  assert server.cache_files == sim.cache_files == (VOCABULARY_FILE, CLASS_EMBEDDINGS_FILE)
  assert (server.setup_examples, server.setup_calls) == (sim.setup_examples, sim.setup_calls)
  # A resumed server reads its file back and asks the clients nothing.
  asked.clear()
  again = server_build(config_of("smoke", dataset), str(tmp_path), sim, asked)
  assert asked == []
  np.testing.assert_array_equal(prompt_vocabulary(again), prompt_vocabulary(sim))


def test_a_node_holds_its_own_client_and_the_servers_vocabulary(simulation, dataset, tmp_path):
  sim, sim_dir = simulation
  config = config_of("smoke", dataset)
  node = build_text_task(config, BuildOptions(workdir=str(tmp_path), role=NODE, partition_id=1))
  assert node.clients.x.shape[0] == 1 and node.num_clients == node.client_count == 3
  n = int(node.clients.num_examples[0])
  assert n == int(sim.clients.num_examples[1]) == 103
  np.testing.assert_array_equal(node.clients.x[0, :n], sim.clients.x[1, :n])
  np.testing.assert_array_equal(node.clients.y[0, :n], sim.clients.y[1, :n])
  np.testing.assert_array_equal(node.label_histograms[0], sim.label_histograms[1])
  # Its answer is client 1's in the simulation (the same function on the same texts).
  mine = node.statistics[WORD_COUNTS](client_row(node.clients, 0), {}, {})
  sims = sim.statistics[1][WORD_COUNTS](client_row(sim.clients, 1), {}, {})
  assert mine.keys() == sims.keys()
  for key in mine:
    np.testing.assert_array_equal(mine[key], sims[key])
  # While the server gathers: placeholders of the candidates' and the class embeddings'
  # shapes (all [PAD], zeros: the node pays no query for the verbalizers).
  assert prompt_vocabulary(node).tolist() == [0] * 30
  assert node.task.class_embeddings.shape == sim.task.class_embeddings.shape
  assert not np.asarray(node.task.class_embeddings).any() and node.setup_examples == 0
  assert not os.path.exists(tmp_path / VOCABULARY_FILE)
  for name in (VOCABULARY_FILE, CLASS_EMBEDDINGS_FILE):  # what the server sends
    shutil.copyfile(os.path.join(sim_dir, name), tmp_path / name)
  sent = build_text_task(config, BuildOptions(workdir=str(tmp_path), role=NODE, partition_id=1))
  np.testing.assert_array_equal(prompt_vocabulary(sent), prompt_vocabulary(sim))
  np.testing.assert_array_equal(sent.task.class_embeddings, sim.task.class_embeddings)


def test_the_soft_prompt_builds_in_every_role_without_a_vocabulary(dataset, tmp_path):
  config = config_of("soft_smoke", dataset)
  sim = build_text_task(config, BuildOptions(workdir=str(tmp_path / "s")))
  os.makedirs(tmp_path / "server")
  asked = []
  server = server_build(config, str(tmp_path / "server"), sim, asked)
  node = build_text_task(config, BuildOptions(workdir=str(tmp_path), role=NODE, partition_id=2))
  assert asked == [] and sim.cache_files == server.cache_files == node.cache_files == (
      CLASS_EMBEDDINGS_FILE,)
  np.testing.assert_array_equal(server.task.class_embeddings, sim.task.class_embeddings)
  assert int(node.clients.num_examples[0]) == int(sim.clients.num_examples[2])
  assert os.listdir(tmp_path / "server") == [CLASS_EMBEDDINGS_FILE]
