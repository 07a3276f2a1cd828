"""Answering concurrent chat requests together: one batched generation for the requests
that arrive within a short window.

A ``LocalChatLLM`` answers a list of conversations in one batched generation, and
greedy rows do not depend on each other, so requests that arrive together can be
answered together with the very answers they would get alone. ``RequestBatcher`` sits
between the HTTP handlers (many threads) and the model (one at a time): ``submit``
queues one request and waits; a worker thread takes the first waiting request, keeps
collecting for ``window_s`` seconds or until ``max_batch`` requests, and answers them
with one ``complete`` call (each with its own ``max_tokens``). A failing batch fails
each of its requests with the same error.

``batches`` and ``requests`` count what the worker did (a service with concurrent
clients answers far fewer batches than requests).
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import Sequence

from fedbbpt_jax.blackbox.llm_local import ChatLLM, Completion, Message


class RequestBatcher:
  """Batches concurrent ``submit`` calls into ``llm.complete`` calls (see the module doc).

  Args:
    llm: the model (its ``complete`` takes one ``max_tokens`` per conversation).
    max_batch: the most requests answered together.
    window_s: how long the worker waits for more requests after the first.
    start: start the worker thread now (tests queue requests first, then ``start()``).
  """

  def __init__(self, llm: ChatLLM, max_batch: int = 32, window_s: float = 0.01,
               start: bool = True):
    if max_batch < 1 or window_s < 0:
      raise ValueError(f"max_batch={max_batch} must be >= 1 and window_s={window_s} >= 0")
    self.llm, self.max_batch, self.window_s = llm, max_batch, window_s
    self._queue: queue.Queue = queue.Queue()
    self.batches = 0
    self.requests = 0
    self._worker = threading.Thread(target=self._run, daemon=True, name="chat-batcher")
    if start:
      self.start()

  def start(self) -> None:
    self._worker.start()

  def submit(self, messages: Sequence[Message], max_tokens: int) -> Completion:
    """Queues one request and returns its answer (raises what the batch raised)."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    self._queue.put((messages, max_tokens, future))
    return future.result()

  def _take(self) -> list:
    batch = [self._queue.get()]
    while len(batch) < self.max_batch:
      try:
        batch.append(self._queue.get(timeout=self.window_s))
      except queue.Empty:
        break
    return batch

  def _run(self) -> None:
    while True:
      batch = self._take()
      try:
        answers = self.llm.complete([m for m, _, _ in batch], [n for _, n, _ in batch])
      except Exception as e:  # pylint: disable=broad-except
        for _, _, future in batch:
          future.set_exception(e)
        continue
      self.batches += 1
      self.requests += len(batch)
      for (_, _, future), answer in zip(batch, answers):
        future.set_result(answer)
