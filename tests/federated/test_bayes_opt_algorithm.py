"""Bayesian optimisation as a federated algorithm (``fed_bo``, ``centralized_bo``) on the
instruction family, a tiny GPT-2 made in the test as generator and black-box LLM: fed_bo
with one client equals centralized BO round for round; the first points are the Sobol design
and the later ones new; the server's scores equal the clients' scores combined by hand
(example-weighted mean, median), with and without each client's score noise; a run through
the driver counts exactly the rows the black box scored and resumes bit-exactly; what BO
cannot run with is refused by field.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.instruction import get_config
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated.algorithms.bayes_opt import SCORE_NOISE_FOLD
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.flower.server_app import check_deployable
from fedbbpt_jax.tasks.instruction.llm_blackbox import instruction_rows
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.config_check import validate_config
from fedbbpt_jax.train.vmapped_sweep import SweepMismatchError, check_members
from fedbbpt_jax.zo.bayes_opt import sobol_design
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_gpt2 import write_tiny_gpt2


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def numbers_task(tmp_path_factory):
  """Every expected output is "numbers", which the tiny GPT-2 says for some inputs under
  some instructions, so the scores vary with z."""
  inputs = ["cat", "dog", "apple", "banana", "red", "blue", "one", "two", "three"] * 2
  examples = {str(i + 1): {"input": x, "output": "numbers"} for i, x in enumerate(inputs)}
  path = tmp_path_factory.mktemp("task") / "numbers.json"
  path.write_text(json.dumps({"examples": examples}))
  return str(path)


def bo_config(model, task, algorithm, **changes):
  c = get_config("smoke")
  c.generator.model_path = c.llm.model_path = str(model)
  defaults = dict(task__json_path=task, server__algorithm=algorithm, data__train_examples=6,
                  data__test_examples=4, train__rounds=3, baselines__zero_shot=False,
                  bo__initial=4, bo__batch=2, bo__fit_steps=20)
  return with_overrides(c, **{**defaults, **changes})


def rounds_of(config, rounds):
  exp = build_experiment(config)
  state = exp.algorithm.init(exp.init_params)
  metrics = []
  for _ in range(rounds):
    state, m = exp.algorithm.apply(state, exp.clients, exp.root_key, exp.hparams)
    exp.bundle.blackbox.raise_pending_error()
    metrics.append(m)
  return exp, state, metrics


def test_fed_bo_with_one_client_equals_centralized_bo_round_for_round(model, numbers_task):
  fed_exp, fed, fed_m = rounds_of(bo_config(model, numbers_task, "fed_bo", data__num_clients=1,
                                            bo__score_vectors="examples"), 2)
  _, central, central_m = rounds_of(bo_config(model, numbers_task, "centralized_bo",
                                              data__num_clients=1), 2)
  assert int(fed.count) == int(central.count) == 4  # 2 rounds x bo.batch 2
  for field in ("points", "scores", "vectors", "proposals"):
    np.testing.assert_array_equal(np.asarray(getattr(fed, field)),
                                  np.asarray(getattr(central, field)), err_msg=field)
  np.testing.assert_array_equal(np.asarray(fed.params["z"]), np.asarray(central.params["z"]))
  assert [float(m["train_loss"]) for m in fed_m] == [float(m["train_loss"]) for m in central_m]
  # Rounds 1-2 evaluate the Sobol design (bo.initial 4, two a round); the GP then proposes
  # round 3's points (equal above), none evaluated before; the model is the best so far.
  points, scores = np.asarray(fed.points)[:4], np.asarray(fed.scores)[:4]
  np.testing.assert_allclose(points, sobol_design(4, 4, 0), rtol=0, atol=1e-7)
  proposals = np.asarray(fed.proposals)
  assert proposals.shape == (2, 4) and np.abs(proposals).max() <= 1.0
  assert all(not np.any(np.all(points == p, axis=1)) for p in proposals)
  assert not np.any(np.asarray(fed.points)[4:])  # the rest of the record is empty
  np.testing.assert_array_equal(np.asarray(fed.params["z"]), points[np.argmax(scores)])
  assert float(fed_m[-1]["train_loss"]) == pytest.approx(-scores.max())
  assert scores.max() > scores.min()  # the scores vary with z on this task
  # Every (point, example) of the client's 6 examples was scored: vectors are -losses.
  rows = np.asarray(fed_exp.clients.x[0][:6])  # the client's 6 examples
  bb = fed_exp.bundle.blackbox
  for p, vector in zip(points, np.asarray(fed.vectors)[:4]):
    want = bb.predict(np.asarray(instruction_rows(p, rows)))[:, 0]
    np.testing.assert_allclose(vector, want - 1.0, atol=1e-6)  # score - 1 = -loss


@pytest.mark.parametrize("aggregator", ["weighted_mean", "median"])
def test_the_server_combines_the_clients_scores_as_computed_by_hand(model, numbers_task,
                                                                    aggregator):
  config = bo_config(model, numbers_task, "fed_bo", data__num_clients=3,
                     data__train_examples=9, server__aggregator=aggregator)
  exp, state, metrics = rounds_of(config, 1)
  bb, clients = exp.bundle.blackbox, exp.clients
  points = np.asarray(state.points)[:2]
  means = np.asarray([[bb.predict(np.asarray(instruction_rows(
      p, np.asarray(clients.x[c][:int(clients.num_examples[c])]))))[:, 0].mean()
      for c in range(3)] for p in points])                                   # [points, clients]
  sizes = np.asarray(clients.num_examples, float)
  want = (means @ sizes / sizes.sum() if aggregator == "weighted_mean"
          else np.median(means, axis=1))
  # The server's score of a point is -loss = (execution score) - 1.
  np.testing.assert_allclose(np.asarray(state.scores)[:2], want - 1.0, atol=1e-6)
  np.testing.assert_allclose(np.asarray(state.vectors)[:2], means - 1.0, atol=1e-6)
  assert np.asarray(metrics[0]["cohort"]).tolist() == [0, 1, 2]


def test_local_bo_is_every_clients_own_bo_on_its_own_examples(model, numbers_task, tmp_path):
  """The BO algorithms' local-only baseline: client i runs BO on its examples alone. With
  one client it equals centralized BO round for round; with three, each member scored the
  Sobol design on exactly its own rows (per-example vectors, its mean as the score), and
  the driver reports every client's own instruction at fed_bo's query cost."""
  one = bo_config(model, numbers_task, "fed_bo", data__num_clients=1)
  exp = build_experiment(one)
  local = exp.local_only.init(exp.init_params)
  for _ in range(2):
    local, _ = exp.local_only.apply(local, exp.clients, exp.root_key, exp.hparams)
  _, central, _ = rounds_of(bo_config(model, numbers_task, "centralized_bo",
                                      data__num_clients=1), 2)
  for field in ("points", "scores", "vectors", "proposals", "count"):
    np.testing.assert_array_equal(np.asarray(getattr(local.clients[0], field)),
                                  np.asarray(getattr(central, field)), err_msg=field)
  np.testing.assert_array_equal(np.asarray(local.params["z"])[0], np.asarray(central.params["z"]))

  config = bo_config(model, numbers_task, "fed_bo", data__num_clients=3, data__train_examples=10,
                     baselines__local_only=True, train__rounds=1)
  exp = build_experiment(config)
  assert exp.local_only.name == "local_bo"
  state, _ = exp.local_only.apply(exp.local_only.init(exp.init_params), exp.clients,
                                  exp.root_key, exp.hparams)
  bb, clients, sizes = exp.bundle.blackbox, exp.clients, np.asarray(exp.clients.num_examples)
  for c, member in enumerate(state.clients):
    points = np.asarray(member.points)[:2]
    np.testing.assert_allclose(points, sobol_design(4, 4, 0)[:2], rtol=0, atol=1e-7)
    own = np.asarray(clients.x[c][:sizes[c]])
    want = np.stack([bb.predict(np.asarray(instruction_rows(p, own)))[:, 0] - 1.0
                     for p in points])                                   # [points, its rows]
    np.testing.assert_allclose(np.asarray(member.vectors)[:2], want, atol=1e-6)
    np.testing.assert_allclose(np.asarray(member.scores)[:2], want.mean(axis=1), atol=1e-6)
  assert np.asarray(state.params["z"]).shape[0] == 3
  wrapped = []
  summary = run(config, str(tmp_path / "run"),
                wrap_blackbox=lambda b: wrapped.append(CountingBlackBox(b)) or wrapped[-1])
  assert len(summary["local_only_client_accuracies"]) == 3
  # fed_bo scores its smaller clients' padded rows too (3 x 2 points x 4 rows); the local
  # BOs score their own rows only (2 points x 10 examples); evaluation: fed_bo's test set,
  # then each client's instruction on it.
  assert summary["black_box_queries"] == 3 * 2 * 4
  assert summary["local_only_black_box_queries"] == 2 * 10
  test = config.data.test_examples
  assert wrapped[0].counts()["examples"] == 3 * 2 * 4 + test + 2 * 10 + 3 * test


@pytest.mark.parametrize("aggregator, vectors", [("weighted_mean", "examples"),
                                                   ("median", "clients")])
def test_score_noise_is_added_to_every_upload_as_computed_by_hand(model, numbers_task,
                                                                 aggregator, vectors):
  """Each client adds N(0, 0.5^2) to every score it uploads, drawn from its own round key's
  stream SCORE_NOISE_FOLD; the server combines the noisy scores (weighted mean or median)
  and the GP's vectors are the noisy ones; a padded row of a smaller client stays zero."""
  std = 0.5
  config = bo_config(model, numbers_task, "fed_bo", data__num_clients=3,
                     data__train_examples=10, server__aggregator=aggregator,
                     bo__score_vectors=vectors, bo__score_noise=std)
  exp, state, _ = rounds_of(config, 1)
  bb, clients = exp.bundle.blackbox, exp.clients
  sizes = np.asarray(clients.num_examples)
  rows = int(sizes.max())
  assert sorted(sizes.tolist()) == [3, 3, 4]  # one client's batch has a padded row
  points = np.asarray(state.points)[:2]
  exact = [[bb.predict(np.asarray(instruction_rows(p, np.asarray(clients.x[c][:sizes[c]]))))
            [:, 0] - 1.0 for c in range(3)] for p in points]       # -losses [point][client]
  _, k_clients = round_keys(exp.root_key, jnp.asarray(0))
  keys = client_keys(k_clients, jnp.arange(3))
  means, vector_rows = np.zeros((2, 3)), np.zeros((2, 3, rows))
  for c in range(3):
    k_mean, k_rows = jax.random.split(jax.random.fold_in(keys[c], SCORE_NOISE_FOLD))
    mean_noise = std * np.asarray(jax.random.normal(k_mean, (2,)))
    row_noise = std * np.asarray(jax.random.normal(k_rows, (2, rows)))
    for i in range(2):
      means[i, c] = np.mean(exact[i][c]) - mean_noise[i]         # score = -(loss + noise)
      vector_rows[i, c, :sizes[c]] = exact[i][c] - row_noise[i, :sizes[c]]
  want = (means @ sizes / sizes.sum() if aggregator == "weighted_mean"
          else np.median(means, axis=1))
  np.testing.assert_allclose(np.asarray(state.scores)[:2], want, atol=1e-5)
  want_vectors = vector_rows.reshape(2, -1) if vectors == "examples" else means
  np.testing.assert_allclose(np.asarray(state.vectors)[:2], want_vectors, atol=1e-5)
  noise = np.asarray(state.scores)[:2] - (np.asarray([[np.mean(e) for e in p] for p in exact])
                                          @ sizes / sizes.sum())
  assert np.abs(noise).max() > 0.01  # the noise is there, not rounding


def test_a_bo_run_counts_the_rows_it_scored_and_resumes_bit_exactly(model, numbers_task,
                                                                   tmp_path):
  config = lambda rounds: bo_config(model, numbers_task, "fed_bo", train__rounds=rounds,
                                    bo__initial=2)
  wrapped = []
  straight = run(config(2), str(tmp_path / "straight"),
                 wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  # 2 rounds x 2 points x 2 clients x 3 examples; evaluation: the test set after every round.
  assert straight["black_box_queries"] == 2 * 2 * 2 * 3
  assert wrapped[0].counts()["examples"] == 2 * 2 * 2 * 3 + 2 * config(2).data.test_examples
  run(config(1), str(tmp_path / "resumed"))  # round 2's points: the GP's, after a resume
  resumed = run(config(2), str(tmp_path / "resumed"))
  read = lambda w: [{k: v for k, v in json.loads(line).items()
                     if k not in ("round_seconds", "wall_seconds")}
                    for line in open(w / "metrics.jsonl")]
  assert read(tmp_path / "resumed") == read(tmp_path / "straight")
  assert [r["bo_points"] for r in read(tmp_path / "straight")] == [2, 4]
  for key in ("instruction", "final_loss", "black_box_queries"):
    assert resumed[key] == straight[key]


@pytest.mark.parametrize("changes, message", [
    (dict(bo__initial=3), "bo.initial must be a positive multiple of bo.batch"),
    (dict(server__cohort_size=1), "config.server.cohort_size=1: server.algorithm='fed_bo'"),
    (dict(bo__score_vectors="tokens"), "config.bo.score_vectors"),
    (dict(train__rounds=600), "raise bo.max_points"),
    (dict(bo__score_noise=-0.1), "config.bo.score_noise=-0.1 must be >= 0"),
])
def test_what_bo_cannot_run_with_is_named(model, numbers_task, changes, message):
  with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
    validate_config(bo_config(model, numbers_task, "fed_bo", **changes))


def test_a_sweep_and_a_deployment_refuse_a_server_step_on_the_host(model, numbers_task):
  config = bo_config(model, numbers_task, "centralized_bo")
  with pytest.raises(SweepMismatchError, match="'centralized_bo' runs its server step on the "
                     "host .* which a vmapped sweep cannot trace"):
    check_members([config, with_overrides(config.copy_and_resolve_references(), seed=1)])
  with pytest.raises(ConfigError, match="which a deployment's jitted server step cannot trace"):
    check_deployable(config)
