"""The instruction family through the generic training loop (``task.family='instruction'``,
``configs/instruction.py``) on a tiny GPT-2 made in the test as generator and
black-box LLM: the black box scores exactly as the host-side scorer does, once per
(instruction, example); traced (jit + vmap over clients) equals eager; a run trains,
describes its instruction, resumes bit-exactly; the median aggregator moves z by the
median of the clients' uploads; every algorithm's counters equal the rows the black box
really scored; a spent token budget at the provider (the chat service on loopback) stops
the run after its last complete round."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.instruction import get_config
from fedbbpt_jax.blackbox import QueryBudgetExceeded
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.federated.aggregation.privacy import epsilon
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.models.causal_lm import load_causal_lm
from fedbbpt_jax.parallel.cohort import run_cohort
from fedbbpt_jax.prompts import InstructionGenerator
from fedbbpt_jax.serve.chat import create_chat_app
from fedbbpt_jax.serve.keys import KeyStore
from fedbbpt_jax.tasks.instruction import InstructionBlackBox, InstructionExecution
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer
from fedbbpt_jax.tasks.instruction.rule_tasks import rule_task
from fedbbpt_jax.train import run
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.instruction_tasks import write_task, write_words_task
from tests.helpers.overrides import with_overrides
from tests.helpers.threaded_server import serving
from tests.helpers.tiny_gpt2 import write_tiny_gpt2


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="module")
def words_task(tmp_path_factory):
  """An instruction-induction JSON task over the tiny GPT-2's own words, whose outputs it
  does say under some instructions (it scores 0 on every rule task), so losses vary
  with z."""
  return write_words_task(tmp_path_factory.mktemp("task"))


@pytest.fixture(scope="module")
def numbers_task(tmp_path_factory):
  """Every expected output is "numbers", which the tiny GPT-2 says for some inputs under
  some instructions: one local step from z = 0 already moves every client, each its own
  way (the words task's clients mostly stay at 0 in the first round)."""
  return write_task(tmp_path_factory.mktemp("task"), "numbers", ["numbers"])


def smoke(model, **changes):
  c = get_config("smoke")
  c.generator.model_path = c.llm.model_path = str(model)
  return with_overrides(c, **changes)


def rows(workdir):
  return [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]


def test_black_box_scores_like_the_scorer_and_asks_each_pair_once(model):
  lm = load_causal_lm(str(model))
  task = rule_task("first_word_letter", 10, seed=3)
  generator = InstructionGenerator(lm, task.examples[:2], intrinsic_dim=3, num_soft_tokens=2,
                                   max_new_tokens=4)
  llm = LocalChatLLM(lm)
  bb = InstructionBlackBox(generator, llm, task.examples, "contains", max_tokens=3)
  zs = np.asarray([[0.0, 0.0, 0.0], [0.9, -0.4, 0.2], [-1.0, 1.0, 0.5]], np.float32)
  idx = np.arange(2, 10)
  rows_in = np.concatenate([np.repeat(zs, len(idx), 0), np.tile(idx, 3)[:, None]], 1)
  scores = bb.predict(rows_in).reshape(3, len(idx))
  scorer = InstructionScorer(llm, task.examples[2:10], "contains",
                             exemplars=task.examples[:2], max_tokens=3)
  expected = np.stack([r.per_example for r in scorer.score(generator.generate(zs))])
  np.testing.assert_array_equal(scores, expected)
  distinct = {t for t in generator.generate(zs)
              if scorer.cache[t].degenerate is None}
  assert bb.llm_requests == len(distinct) * len(idx)
  bb.predict(rows_in)  # asked before: no new request
  assert bb.llm_requests == len(distinct) * len(idx)
  # Traced: candidate losses of 2 clients x 2 candidates under jit + vmap, one host call.
  task_ = InstructionExecution(bb, 3)
  batch = {"x": jnp.asarray([[2, 3, 4], [5, 6, 7]]), "y": jnp.ones((2, 3), jnp.int32)}
  cands = {"z": jnp.asarray([zs[:2], zs[1:]])}
  traced = jax.jit(jax.vmap(task_.candidate_losses))(cands, batch)
  eager = np.asarray([[1 - expected[k, np.asarray(batch["x"][c]) - 2].mean()
                       for k in (c, c + 1)] for c in range(2)])
  np.testing.assert_allclose(np.asarray(traced), eager, atol=1e-6)
  with pytest.raises(IndexError, match="outside the task's 10 examples"):
    bb.predict(np.asarray([[0, 0, 0, 10]], np.float32))


def test_a_run_moves_the_instruction_and_resumes_bit_exactly(model, words_task, tmp_path):
  changes = dict(task__json_path=words_task, data__train_examples=10, data__test_examples=6,
                 client__batch_size=5, train__rounds=3, zo__sigma=0.5, client__lr=2.0)
  straight = run(smoke(model, **changes), str(tmp_path / "straight"))
  losses = [r["train_loss"] for r in rows(tmp_path / "straight")]
  assert straight["task"] == "words" and straight["true_definition"] is None
  assert min(losses) < 1.0  # the instruction matters for these outputs
  # Training moved z to another instruction that scores better on the test examples.
  assert straight["instruction"] != straight["zero_shot_instruction"]
  assert straight["final_loss"] < straight["zero_shot_loss"]
  assert straight["black_box_queries"] == 3 * 2 * 2 * 5  # rounds x clients x cands x batch
  first = run(smoke(model, **dict(changes, train__rounds=1)), str(tmp_path / "resumed"))
  assert first["rounds"] == 1 and len(rows(tmp_path / "resumed")) == 1
  resumed = run(smoke(model, **changes), str(tmp_path / "resumed"))
  volatile = ("round_seconds", "wall_seconds")
  strip = lambda rs: [{k: v for k, v in r.items() if k not in volatile} for r in rs]
  assert strip(rows(tmp_path / "resumed")) == strip(rows(tmp_path / "straight"))
  for key in ("instruction", "final_loss", "final_accuracy", "black_box_queries"):
    assert resumed[key] == straight[key]


def test_the_median_aggregator_moves_z_by_the_median_of_the_uploads(model, numbers_task,
                                                                     tmp_path):
  config = smoke(model, task__json_path=numbers_task, server__aggregator="median",
                 data__num_clients=3, data__train_examples=9, train__rounds=1,
                 zo__sigma=0.5, baselines__zero_shot=False)
  s = run(config, str(tmp_path))
  assert s["aggregator"] == "median" and s["black_box_queries"] == 3 * 2 * 3
  # Round 1's uploads again, by the library's client update with the round's keys.
  exp = build_experiment(config)
  state = exp.algorithm.init(exp.init_params)
  _, clients_key = round_keys(exp.root_key, state.round)
  uploads = run_cohort(exp.algorithm.client_update)(
      state.params, exp.clients, client_keys(clients_key, jnp.arange(3)), exp.hparams,
      state.round)
  deltas = np.asarray(uploads.delta["z"])
  median = np.median(deltas, axis=0)
  assert np.linalg.norm(median - deltas.mean(0)) > 0.1  # the mean would land elsewhere
  after = np.asarray(RoundCheckpointer(str(tmp_path)).restore(1, state)[0].params["z"])
  np.testing.assert_allclose(after, np.clip(median, -1.0, 1.0), atol=1e-6)  # from z = 0


@pytest.fixture(scope="module")
def service(model):
  keys = KeyStore({"run-key": None})
  llm = LocalChatLLM(str(model), name="tiny")
  with serving(create_chat_app(llm, keys)) as url:
    yield url, keys


def test_a_spent_provider_budget_stops_after_the_last_complete_round(model, service, tmp_path,
                                                                     monkeypatch):
  url, keys = service
  monkeypatch.setenv("RUN_KEY", "run-key")
  config = smoke(model, llm__url=url, llm__model="tiny", llm__api_key_env="RUN_KEY",
                 train__rounds=3, baselines__zero_shot=False)
  one = run(smoke(model, llm__url=url, llm__model="tiny", llm__api_key_env="RUN_KEY",
                  train__rounds=1, baselines__zero_shot=False), str(tmp_path / "one"))
  spent = keys.usage("run-key")["used"]  # round 1 and the final evaluation
  keys.set_budget("run-key", 2 * spent + 1)  # a second run's round 1 fits, round 2 does not
  with pytest.raises(QueryBudgetExceeded) as error:
    run(config, str(tmp_path / "budget"))
  assert "rerun the same command to resume" in "".join(getattr(error.value, "__notes__", []))
  kept = rows(tmp_path / "budget")
  assert [r["round"] for r in kept] == [1]
  assert kept[0]["train_loss"] == rows(tmp_path / "one")[0]["train_loss"]
  assert keys.usage("run-key")["used"] <= keys.usage("run-key")["budget"]
  del one


@pytest.mark.parametrize("task,changes,train_rows", [
    ("words", dict(server__algorithm="centralized", zo__estimator="gaussian_antithetic",
                   zo__num_directions=2, client__optimizer="adam"), 2 * 4 * 3),  # pooled
    ("words", dict(server__algorithm="dfedsam"), 2 * 2 * 2 * 3),  # SAM: two estimates
    ("words", dict(server__algorithm="fedone"), 1 * 2 * 3),        # one client a round
    ("rule", dict(server__aggregator="dp_gaussian", server__dp__noise_multiplier=0.5,
                  baselines__local_only=True), 2 * 2 * 3),
], ids=["centralized_antithetic_adam", "dfedsam", "fedone", "rule_task_dp_and_local_only"])
def test_every_algorithm_runs_the_family(model, words_task, tmp_path, task, changes,
                                         train_rows):
  """One round (rows: clients x estimates x candidates x batch 3); the counters equal the
  rows the black box really scored; a rule task is described with its definition."""
  on_words = (dict(task__json_path=words_task, data__train_examples=10, data__test_examples=6,
                   baselines__zero_shot=False) if task == "words" else {})
  config = smoke(model, train__rounds=1, **on_words, **changes)
  wrapped = []
  s = run(config, str(tmp_path),
          wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  counters, n_test = s["query_counters"], config.data.test_examples
  assert s["rounds"] == 1 and s["black_box_queries"] == counters["bb_examples"] == train_rows
  own_models = 2 if changes.get("server__algorithm") == "dfedsam" else 0  # + each client's
  assert counters["eval_bb_examples"] == (1 + own_models) * n_test
  baselines = n_test if config.baselines.zero_shot else 0  # z = 0 on the test examples
  if changes.get("baselines__local_only"):  # each client's round alone, then its test
    assert s["local_only_black_box_queries"] == 2 * 2 * 3
    baselines += 2 * 2 * 3 + 2 * n_test
  real = wrapped[0].counts()["examples"]
  assert real == train_rows + counters["eval_bb_examples"] + baselines
  assert 0 < s["llm_requests"] <= real  # a (instruction, example) pair is asked once
  # Scores are 0 or 1 ('contains'): the loss (1 - mean score) is 1 - the accuracy.
  assert s["final_loss"] * n_test == round(s["final_loss"] * n_test)
  assert s["final_loss"] == pytest.approx(1.0 - s["final_accuracy"], abs=1e-6)
  if task == "rule":
    assert (s["task"], s["true_definition"]) == ("first_word_letter",
                                                 "Write the first letter of the word.")
  else:
    assert (s["task"], s["true_definition"]) == ("words", None)
  if changes.get("server__aggregator") == "dp_gaussian":  # every client every round: q = 1
    assert s["dp_epsilon"] == epsilon(0.5, 1, 1e-5, 2, 2, "poisson", "rdp")
