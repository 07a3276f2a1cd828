"""The black-box LLM: the local Flax backend, the OpenAI-compatible chat service serving
it on loopback (a real uvicorn server), and the HTTP client with retries, meters and
budgets. The model is a tiny GPT-2 made in the test."""

import json
import os
import threading
import time

import httpx
import pytest

from fedbbpt_jax.blackbox import QueryBudgetExceeded, RetryPolicy
from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.blackbox.llm_remote import ChatClient
from fedbbpt_jax.serve.chat import create_chat_app
from fedbbpt_jax.serve.chat_batching import RequestBatcher
from fedbbpt_jax.serve.keys import KeyStore
from tests.helpers.threaded_server import serving
from tests.helpers.tiny_gpt2 import write_tiny_gpt2

CONVERSATIONS = [
    [{"role": "user", "content": "sort the word list"}],
    [{"role": "system", "content": "say one word"}, {"role": "user", "content": "cat dog"}],
    [{"role": "user", "content": "write the first letter of each input then the answer"}],
]


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
  return LocalChatLLM(write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2")))


@pytest.fixture(scope="module")
def service(llm):
  keys = KeyStore({"team-key": None, "small-key": 60})
  with serving(create_chat_app(llm, keys)) as url:
    yield url


def test_local_answers_do_not_depend_on_the_batch(llm):
  before = (llm.meter.requests, llm.meter.total_tokens)
  together = llm.complete(CONVERSATIONS, max_tokens=6)
  assert (llm.meter.requests, llm.meter.total_tokens) == (
      before[0] + 3, before[1] + sum(a.prompt_tokens + a.completion_tokens for a in together))
  alone = [llm.complete([c], max_tokens=6)[0] for c in CONVERSATIONS]
  assert together == alone
  for c, answer in zip(CONVERSATIONS, together):
    assert answer.prompt_tokens == len(llm.encode(llm.prompt(c)))
    assert answer.completion_tokens <= 6 and answer.finish_reason in ("stop", "length")
    assert (answer.finish_reason == "length") == (answer.completion_tokens == 6 and
                                                  "<|endoftext|>" not in answer.text)
  assert len({a.text for a in together}) > 1  # the prompt matters
  # One limit per conversation: each answer equals the one asked alone with its limit.
  limits = [2, 6, 4]
  mixed = llm.complete(CONVERSATIONS, max_tokens=limits)
  assert mixed == [llm.complete([c], max_tokens=m)[0] for c, m in zip(CONVERSATIONS, limits)]
  with pytest.raises(ValueError, match="one for all or one per conversation"):
    llm.complete(CONVERSATIONS, max_tokens=[2, 3])


def test_queued_requests_are_answered_in_one_batch_with_their_own_answers(llm):
  batcher = RequestBatcher(llm, max_batch=8, window_s=0.05, start=False)
  limits = [3, 6, 5]
  results = [None] * 3
  threads = [threading.Thread(target=lambda i=i: results.__setitem__(
      i, batcher.submit(CONVERSATIONS[i], limits[i]))) for i in range(3)]
  for t in threads:
    t.start()
  while batcher._queue.qsize() < 3:  # all three wait before the worker starts
    time.sleep(0.01)
  batcher.start()
  for t in threads:
    t.join(timeout=60)
  assert results == [llm.complete([c], max_tokens=m)[0] for c, m in zip(CONVERSATIONS, limits)]
  assert (batcher.batches, batcher.requests) == (1, 3)
  # A failing batch fails its request with the model's error, and the worker lives on.
  with pytest.raises(ValueError, match="exceeds the model's"):
    batcher.submit(CONVERSATIONS[0], 10_000)
  assert batcher.submit(CONVERSATIONS[1], 6) == results[1]


def test_the_service_answers_like_the_local_model_and_meters_agree(llm, service, monkeypatch):
  monkeypatch.setenv("TEST_LLM_KEY", "team-key")
  client = ChatClient(service, model=llm.name, api_key_env="TEST_LLM_KEY", max_concurrency=3)
  before = httpx.get(service + "/v1/usage", headers={"Authorization": "Bearer team-key"}).json()
  remote = client.complete(CONVERSATIONS, max_tokens=6)
  assert remote == llm.complete(CONVERSATIONS, max_tokens=6)
  after = httpx.get(service + "/v1/usage", headers={"Authorization": "Bearer team-key"}).json()
  assert after["requests"] - before["requests"] == client.meter.requests == 3
  assert after["used"] - before["used"] == client.meter.total_tokens  # tokens, as reported
  assert httpx.get(service + "/v1/models").json()["data"][0]["id"] == llm.name


def test_budgets_and_bad_requests_are_named(llm, service, monkeypatch):
  monkeypatch.setenv("SMALL_KEY", "small-key")
  client = ChatClient(service, model=llm.name, api_key_env="SMALL_KEY",
                      retry=RetryPolicy(max_attempts=1))
  one = [CONVERSATIONS[0]]
  [first] = client.complete(one, max_tokens=8)   # fits in the key's 60 tokens
  headers = {"Authorization": "Bearer small-key"}
  usage = httpx.get(service + "/v1/usage", headers=headers).json()
  assert usage["used"] == first.prompt_tokens + first.completion_tokens  # unused part back
  # A request whose prompt + max_tokens is one token more than what is left: refused.
  # (HTTP 402 is the provider's budget: QueryBudgetExceeded, as the client's own budget.)
  with pytest.raises(QueryBudgetExceeded, match=r"HTTP 402 \(query budget spent"):
    client.complete(one, max_tokens=usage["remaining"] - first.prompt_tokens + 1)
  assert httpx.get(service + "/v1/usage", headers=headers).json()["used"] == usage["used"]
  # The client's own token budget stops it before sending.
  capped = ChatClient(service, model=llm.name, api_key_env="SMALL_KEY", budget_tokens=20)
  with pytest.raises(QueryBudgetExceeded, match="token budget"):
    capped.complete(one, max_tokens=16)
  assert capped.meter.requests == 0
  for body, status, text in [
      ({"model": "gpt-9", "messages": one[0]}, 404, "model 'gpt-9' is not served here"),
      ({"messages": one[0], "temperature": 0.7}, 400, "only 'temperature': 0"),
      ({"messages": []}, 400, "'messages' must be a non-empty list"),
      ({"messages": one[0], "max_tokens": 500}, 400, "exceeds the model's 96 positions")]:
    response = httpx.post(service + "/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == status and text in response.json()["message"]
  assert httpx.post(service + "/v1/chat/completions", json={"messages": one[0]}).status_code == 401


def test_retries_on_overload_then_succeed():
  seen = []
  ok = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}

  def handler(request):
    seen.append(json.loads(request.content)["model"])
    if len(seen) < 3:
      return httpx.Response(503 if len(seen) == 1 else 429, json={"message": "busy"})
    return httpx.Response(200, json=ok)

  client = ChatClient("http://mock", model="m", retry=RetryPolicy(max_attempts=4,
                                                                   backoff_seconds=0.001),
                      transport=httpx.MockTransport(handler))
  [answer] = client.complete([CONVERSATIONS[0]], max_tokens=4)
  assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("hi", 3, 1)
  assert (client.meter.requests, client.meter.retries, len(seen)) == (1, 2, 3)


def test_a_missing_key_variable_is_named():
  os.environ.pop("NO_SUCH_KEY_VAR", None)
  with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR"):
    ChatClient("http://127.0.0.1:9", model="m", api_key_env="NO_SUCH_KEY_VAR")
