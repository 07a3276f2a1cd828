"""``ChatClient``: any OpenAI-compatible ``/v1/chat/completions`` endpoint as a ``ChatLLM``.

The key comes from an environment variable (never from a config file on disk). Every
request is retried on 429, 5xx, connection errors and timeouts with exponential
backoff (``RetryPolicy``, as the image service's client); other 4xx fail at once with
an error naming the URL, the status and the server's message. Conversations of one
``complete`` call go out concurrently (``max_concurrency`` requests in flight). The
meter counts requests, retries and the tokens the server reported; a token budget
stops a ``complete`` call before a request that could pass it (``QueryBudgetExceeded``,
as the query budget of the other black boxes).

Example:
    >>> llm = ChatClient("http://127.0.0.1:8100", model="local-gpt2", api_key_env="LLM_KEY")
    >>> [answer] = llm.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)
    >>> answer.text, llm.meter.completion_tokens
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from typing import Sequence

import httpx

from fedbbpt_jax.blackbox.llm_local import ChatMeter, Completion, Message
from fedbbpt_jax.blackbox.meter import QueryBudgetExceeded
from fedbbpt_jax.blackbox.remote import RETRIED_STATUSES, RemoteBlackBoxError, RetryPolicy


class ChatClient:
  """An OpenAI-compatible chat endpoint (see the module docstring).

  Args:
    url: the base URL (``/v1/chat/completions`` is appended).
    model: the model id to request.
    api_key_env: environment variable holding the key ('' = send none).
    retry: retries and timeouts.
    max_concurrency: requests in flight at once.
    budget_tokens: tokens this client may spend (0 = unlimited); a request is sent only
      if its prompt estimate plus ``max_tokens`` fits in what is left.
    transport: an ``httpx`` transport (tests).
  """

  def __init__(self, url: str, model: str, api_key_env: str = "", *,
               retry: RetryPolicy = RetryPolicy(), max_concurrency: int = 8,
               budget_tokens: int = 0, transport: httpx.BaseTransport | None = None):
    self.url, self.name = url.rstrip("/"), model
    key = os.environ.get(api_key_env, "") if api_key_env else ""
    if api_key_env and not key:
      raise ValueError(f"environment variable {api_key_env} (the API key) is not set")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    self._http = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                              timeout=retry.timeout_seconds,
                              limits=httpx.Limits(max_connections=max_concurrency))
    self.retry, self.max_concurrency = retry, max_concurrency
    self.budget_tokens = int(budget_tokens)
    self.meter = ChatMeter()
    self._lock = threading.Lock()

  def _post(self, body: dict) -> dict:
    endpoint = self.url + "/v1/chat/completions"
    for attempt in range(self.retry.max_attempts):
      if attempt:
        with self._lock:
          self.meter.retries += 1
        time.sleep(self.retry.delay(attempt - 1))
      try:
        response = self._http.post("/v1/chat/completions", json=body)
      except httpx.TransportError as e:
        status, message = None, f"{type(e).__name__}: {e}"
        continue
      if response.status_code == 200:
        return response.json()
      status = response.status_code
      try:
        message = response.json().get("message") or response.text
      except ValueError:
        message = response.text
      if status == 402:  # the provider's budget for this key is spent
        raise QueryBudgetExceeded(f"{endpoint}: HTTP 402 ({message})")
      if status not in RETRIED_STATUSES:
        raise RemoteBlackBoxError(endpoint, status, message)
    raise RemoteBlackBoxError(endpoint, status, message, attempts=self.retry.max_attempts)

  def _one(self, messages: Sequence[Message], max_tokens: int) -> Completion:
    out = self._post({"model": self.name, "messages": list(messages),
                      "max_tokens": int(max_tokens), "temperature": 0})
    try:
      choice, usage = out["choices"][0], out["usage"]
      answer = Completion(choice["message"]["content"], int(usage["prompt_tokens"]),
                          int(usage["completion_tokens"]), choice.get("finish_reason", "stop"))
    except (KeyError, IndexError, TypeError, ValueError) as e:
      raise RemoteBlackBoxError(self.url + "/v1/chat/completions", 200,
                                f"the answer is not a chat completion ({e!r})") from None
    with self._lock:
      self.meter.requests += 1
      self.meter.prompt_tokens += answer.prompt_tokens
      self.meter.completion_tokens += answer.completion_tokens
    return answer

  def check_budget(self, conversations: Sequence[Sequence[Message]], max_tokens: int) -> None:
    """Raises ``QueryBudgetExceeded`` if the call could pass ``budget_tokens`` (prompts
    estimated at one token per 2 characters, an over-estimate for English BPE)."""
    if not self.budget_tokens:
      return
    estimate = sum(sum(len(m["content"]) for m in c) // 2 + max_tokens for c in conversations)
    left = self.budget_tokens - self.meter.total_tokens
    if estimate > left:
      raise QueryBudgetExceeded(f"token budget: {self.meter.total_tokens} of "
                                f"{self.budget_tokens} tokens spent; the next "
                                f"{len(conversations)} requests may need up to {estimate}")

  def complete(self, conversations: Sequence[Sequence[Message]],
               max_tokens: int) -> list[Completion]:
    """Answers every conversation (concurrently), in order."""
    self.check_budget(conversations, max_tokens)
    with concurrent.futures.ThreadPoolExecutor(self.max_concurrency) as pool:
      return list(pool.map(lambda c: self._one(c, max_tokens), conversations))

  def close(self) -> None:
    self._http.close()
