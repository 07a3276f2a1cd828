"""The instruction search loops on the tiny GPT-2 (open LLM) and the chat service on
loopback (black-box LLM, real HTTP): federated zero-order, local-only and centralized
BO run, count every party's cost exactly, and repeat with the same seed."""

import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn
from tokenizers import Tokenizer

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.blackbox.llm_remote import ChatClient
from fedbbpt_jax.models.gpt2 import load_gpt2
from fedbbpt_jax.serve.chat import create_chat_app
from fedbbpt_jax.serve.keys import KeyStore
from fedbbpt_jax.serve.process import LOOPBACK, free_port
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer
from fedbbpt_jax.tasks.instruction.generator import InstructionGenerator
from fedbbpt_jax.tasks.instruction.rule_tasks import rule_task
from fedbbpt_jax.tasks.instruction.search import (centralized_bo, federated_search,
                                                  local_only_search)
from fedbbpt_jax.zo import HParams, make_estimator
from tests.helpers.tiny_gpt2 import write_tiny_gpt2

HP = HParams.create(lr=0.5, sigma=0.3)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  path = write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))
  model, variables = load_gpt2(path)
  llm = LocalChatLLM(path)
  keys = KeyStore({f"client-{i}": None for i in range(2)})
  port = free_port()
  server = uvicorn.Server(uvicorn.Config(create_chat_app(llm, keys), host=LOOPBACK, port=port,
                                         log_level="warning"))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  while not server.started:
    time.sleep(0.05)
  yield path, model, variables, Tokenizer.from_file(f"{path}/tokenizer.json"), \
      f"http://{LOOPBACK}:{port}"
  server.should_exit = True
  thread.join(timeout=10)


def make_generator(parts):
  _, model, variables, tok, _ = parts
  task = rule_task("first_word_letter", 8, seed=1)
  return InstructionGenerator(model, variables, tok, task.examples[:2], intrinsic_dim=4,
                              num_soft_tokens=2, max_new_tokens=4), task


def remote_scorers(parts, task, monkeypatch):
  url = parts[4]
  scorers = []
  for i in range(2):
    monkeypatch.setenv(f"CLIENT_{i}_KEY", f"client-{i}")
    client = ChatClient(url, model="local-gpt2", api_key_env=f"CLIENT_{i}_KEY")
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
    usage = httpx.get(parts[4] + "/v1/usage",
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
  llm = LocalChatLLM(parts[0])
  scorer = InstructionScorer(llm, task.examples[2:5], "contains", exemplars=task.examples[:2],
                             max_tokens=3)
  local = local_only_search(generator, scorer, make_estimator("spsa", 1), HP, rounds=2, steps=2,
                            z0=np.zeros(4, np.float32))
  assert len(local.history) == 2
  bo = centralized_bo(generator, scorer, dim=4, initial=4, iterations=1, batch=2)
  assert len(bo.history) == 2 and bo.history[1] >= bo.history[0]
  assert bo.generations == len(generator.cache)
  usable = [t for t, v in scorer.cache.items() if v.degenerate is None]
  assert scorer.queries == len(usable) * 3
  assert len(generator.cache) >= 4 + 2  # the design and the batch, each z generated once
