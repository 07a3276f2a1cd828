"""The instruction search loops on the tiny GPT-2 (open LLM) and the chat service on
loopback (black-box LLM, real HTTP): federated zero-order, local-only and centralized
BO run, count every party's cost exactly, and repeat with the same seed."""

import json

import httpx
import numpy as np
import pytest
from scipy.stats import qmc

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.blackbox.llm_remote import ChatClient
from fedbbpt_jax.federated.aggregation.aggregators import make_aggregator
from fedbbpt_jax.models.causal_lm import load_causal_lm
from fedbbpt_jax.serve.chat import create_chat_app
from fedbbpt_jax.serve.keys import KeyStore
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer
from fedbbpt_jax.tasks.instruction.generator import InstructionGenerator
from fedbbpt_jax.tasks.instruction.rule_tasks import rule_task
from fedbbpt_jax.tasks.instruction.search import (centralized_bo, federated_search,
                                                  local_only_search)
from fedbbpt_jax.zo import HParams, make_estimator
from tests.helpers.threaded_server import serving
from tests.helpers.tiny_gpt2 import write_tiny_gpt2

HP = HParams.create(lr=0.5, sigma=0.3)
# Outputs the tiny GPT-2 gives under some instructions and not others ("answer answer
# answer" under most, "numbers" or "system:" under a few).
SAID_EXAMPLES = (("apple", "answer answer answer"), ("red", "answer answer answer"),
                 ("cat", "answer"))


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  path = write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))
  lm = load_causal_lm(path)
  llm = LocalChatLLM(lm, name="local-gpt2")
  keys = KeyStore({f"{who}-{i}": None for i in range(2) for who in ("client", "small")})
  with serving(create_chat_app(llm, keys)) as url:
    yield path, lm, url, keys


def make_generator(parts):
  lm = parts[1]
  task = rule_task("first_word_letter", 8, seed=1)
  return InstructionGenerator(lm, task.examples[:2], intrinsic_dim=4, num_soft_tokens=2,
                              max_new_tokens=4), task


def remote_scorers(parts, task, monkeypatch, key="client", budget_tokens=0):
  url = parts[2]
  scorers = []
  for i in range(2):
    monkeypatch.setenv(f"CLIENT_{i}_KEY", f"{key}-{i}")
    client = ChatClient(url, model="local-gpt2", api_key_env=f"CLIENT_{i}_KEY",
                        budget_tokens=budget_tokens)
    scorers.append(InstructionScorer(client, task.examples[2 + 3 * i:5 + 3 * i], "contains",
                                     exemplars=task.examples[:2], max_tokens=3))
  return scorers


def test_federated_search_counts_every_query_and_repeats(parts, monkeypatch):
  generator, task = make_generator(parts)
  scorers = remote_scorers(parts, task, monkeypatch)
  estimator = make_estimator("spsa", 1)
  z0 = np.zeros(4, np.float32)
  result = federated_search(generator, scorers, estimator, HP, rounds=2, steps=2, z0=z0)
  assert len(result.history) == 2 and result.z.shape == (4,)
  assert np.abs(result.z).max() <= 1
  # Costs: each distinct z generated once; each distinct usable instruction scored once
  # per client, one request per example; the server's own counts agree.
  assert result.generations == len(generator.cache)
  for i, s in enumerate(scorers):
    asked = [t for t, v in s.cache.items() if v.degenerate is None]
    assert s.queries == len(asked) * len(s.examples)
    usage = httpx.get(parts[2] + "/v1/usage",
                      headers={"Authorization": f"Bearer client-{i}"}).json()
    assert usage["requests"] == s.queries == s.llm.meter.requests
    assert usage["used"] == s.llm.meter.total_tokens
  # Same seed, fresh generator and scorers: the same point and instruction.
  again = federated_search(make_generator(parts)[0], remote_scorers(parts, task, monkeypatch),
                           estimator, HP, rounds=2, steps=2, z0=z0)
  np.testing.assert_array_equal(again.z, result.z)
  assert again.instruction == result.instruction


def test_local_only_and_centralized_bo_run_and_count(parts):
  generator, task = make_generator(parts)
  llm = LocalChatLLM(parts[1])
  scorer = InstructionScorer(llm, task.examples[2:5], "contains", exemplars=task.examples[:2],
                             max_tokens=3)
  local = local_only_search(generator, scorer, make_estimator("spsa", 1), HP, rounds=2, steps=2,
                            z0=np.zeros(4, np.float32))
  assert len(local.history) == 2
  # BO scores on examples whose expected output the tiny GPT-2 says under some
  # instructions only (it scores 0 on every rule task), so its scores differ.
  bo_scorer = InstructionScorer(llm, SAID_EXAMPLES, "contains", exemplars=task.examples[:2],
                                max_tokens=3)
  bo = centralized_bo(generator, bo_scorer, dim=4, initial=4, iterations=1, batch=2)
  assert bo.generations == len(generator.cache)
  for s in (scorer, bo_scorer):
    usable = [t for t, v in s.cache.items() if v.degenerate is None]
    assert s.queries == len(usable) * 3
  assert len(generator.cache) >= 4 + 2  # the design and the batch, each z generated once
  # history = the best score after the design, then after the batch, re-scored here by a
  # fresh scorer: the design is the scrambled Sobol sequence (seed 0) in [-1, 1]^4, and
  # every instruction BO evaluated went through bo_scorer (its cache holds them all).
  check = InstructionScorer(llm, SAID_EXAMPLES, "contains", exemplars=task.examples[:2],
                            max_tokens=3)
  rescore = lambda texts: [r.mean for r in check.score(list(texts))]
  design = 2.0 * qmc.Sobol(4, scramble=True, seed=0).random(4) - 1.0
  design_scores = rescore(generator.generate(design))
  # The design's best is neither its first nor its last point, nor its mean.
  assert max(design_scores) > max(design_scores[0], design_scores[-1], np.mean(design_scores))
  assert bo.history == [max(design_scores), max(rescore(bo_scorer.cache))]
  assert rescore([bo.instruction]) == [bo.history[-1]]  # the returned point is the best one


def test_a_spent_budget_stops_after_the_last_complete_round(parts, monkeypatch, tmp_path):
  """The provider's budget runs out in round 2 (HTTP 402): the search returns the point
  of round 1, says why, and its state file holds round 1."""
  _, _, url, keys = parts
  estimator, z0 = make_estimator("spsa", 1), np.zeros(4, np.float32)
  generator, task = make_generator(parts)
  scorers = remote_scorers(parts, task, monkeypatch, key="small")
  one = federated_search(generator, scorers, estimator, HP, rounds=1, steps=1, z0=z0)
  generator, _ = make_generator(parts)
  budgeted = remote_scorers(parts, task, monkeypatch, key="small")
  # Fresh caches ask round 1 again (the same tokens); then each key has one token left,
  # so round 2's first request (prompt + max_tokens reserved) is refused.
  for i in range(2):
    keys.set_budget(f"small-{i}", 2 * keys.usage(f"small-{i}")["used"] + 1)
  state = str(tmp_path / "state.json")
  result = federated_search(generator, budgeted, estimator, HP, rounds=4, steps=1, z0=z0,
                            state_file=state)
  assert result.stopped is not None and "budget spent in round 2" in result.stopped
  assert "HTTP 402" in result.stopped
  assert len(result.history) == 1 and result.history == one.history
  np.testing.assert_array_equal(result.z, one.z)
  assert json.load(open(state))["rounds_done"] == 1
  for i in range(2):
    usage = keys.usage(f"small-{i}")
    assert usage["used"] <= usage["budget"]
  assert keys.usage("small-0")["refused_requests"] >= 1  # client 0 asks first in round 2


def test_an_interrupted_search_resumes_after_its_last_round(parts, tmp_path):
  generator, task = make_generator(parts)
  llm = LocalChatLLM(parts[1])
  scorers = lambda: [InstructionScorer(llm, task.examples[2 + 3 * i:5 + 3 * i], "contains",
                                       exemplars=task.examples[:2], max_tokens=3)
                     for i in range(2)]
  estimator, z0 = make_estimator("spsa", 1), np.zeros(4, np.float32)
  whole = federated_search(generator, scorers(), estimator, HP, rounds=3, steps=1, z0=z0)
  state = str(tmp_path / "state.json")
  first = federated_search(make_generator(parts)[0], scorers(), estimator, HP, rounds=2,
                           steps=1, z0=z0, state_file=state)
  # A new process: fresh generator and scorers, the same state file.
  resumed = federated_search(make_generator(parts)[0], scorers(), estimator, HP, rounds=3,
                             steps=1, z0=z0, state_file=state)
  assert resumed.history[:2] == first.history and resumed.history == whole.history
  np.testing.assert_array_equal(resumed.z, whole.z)
  assert resumed.queries >= first.queries  # the costs of both sessions add up
  with pytest.raises(ValueError, match="cannot resume a search over"):
    federated_search(make_generator(parts)[0], scorers(), estimator, HP, rounds=3, steps=1,
                     z0=np.zeros(5, np.float32), state_file=state)


def test_the_server_combines_client_changes_with_the_chosen_aggregator(parts):
  generator, task = make_generator(parts)
  llm = LocalChatLLM(parts[1])
  examples = rule_task("first_word_letter", 12, seed=2).examples
  scorers = [InstructionScorer(llm, examples[3 * i:3 * i + 3], "contains",
                               exemplars=task.examples[:2], max_tokens=3) for i in range(4)]
  median = make_aggregator("median")
  seen = []

  def recording(deltas, weights, key):
    seen.append(np.asarray(deltas))
    return median(deltas, weights, key)

  z0 = np.zeros(4, np.float32)
  result = federated_search(generator, scorers, make_estimator("spsa", 1), HP, rounds=1,
                            steps=1, z0=z0, aggregator=recording)
  assert seen[0].shape == (4, 4)
  np.testing.assert_allclose(result.z, np.clip(z0 + np.median(seen[0], axis=0), -1, 1),
                             atol=1e-6)
  mean = federated_search(generator, scorers, make_estimator("spsa", 1), HP, rounds=1,
                          steps=1, z0=z0, aggregator=make_aggregator("weighted_mean"))
  np.testing.assert_allclose(mean.z, np.clip(z0 + seen[0].mean(0), -1, 1), atol=1e-6)
