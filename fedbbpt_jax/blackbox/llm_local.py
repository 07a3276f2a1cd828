"""A black-box LLM as chat completions: the interface, and the local JAX backend.

``ChatLLM.complete(conversations, max_tokens) -> [Completion]`` is what the
instruction track calls, whichever backend answers: this module's ``LocalChatLLM``
(a local causal LM, ``models.causal_lm``: SmolLM2-135M-Instruct offline by default,
GPT-2 / Llama folders, GGUF files; greedy decoding) or ``llm_remote.ChatClient`` (any
OpenAI-compatible ``/v1/chat/completions`` endpoint, e.g. ``serve.chat`` serving a
``LocalChatLLM``). A conversation is a list of ``{"role", "content"}`` messages; the
local backend renders it with the model's chat template (or a plain ``role: content``
transcript for a base model) and stops at an end-of-text/turn token or after
``max_tokens``.

Requests are answered ``max_batch`` at a time; prompts are left-padded to a multiple
of ``PROMPT_BUCKET`` tokens and each chunk to a power of two rows, so a long run
compiles a handful of programs, not one per request.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Protocol, Sequence

import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.llm_zoo import load_llm
from fedbbpt_jax.models.causal_lm import CausalLM, left_pad
from fedbbpt_jax.models.token_bytes import TokenLowerBound, token_lower_bound

PROMPT_BUCKET = 16
Message = dict  # {"role": str, "content": str}


@dataclasses.dataclass(frozen=True)
class Completion:
  """One answer and its token counts (as an OpenAI-compatible API reports them)."""

  text: str
  prompt_tokens: int
  completion_tokens: int
  finish_reason: str  # 'stop' (end-of-text) | 'length' (max_tokens reached)


@dataclasses.dataclass
class ChatMeter:
  """What a black-box LLM was asked: requests, retries (endpoints) and tokens (as the
  server reported them, or as the local model counted them)."""

  requests: int = 0
  retries: int = 0
  prompt_tokens: int = 0
  completion_tokens: int = 0

  @property
  def total_tokens(self) -> int:
    return self.prompt_tokens + self.completion_tokens


class ChatLLM(Protocol):
  """A black-box LLM answering conversations (see the module docstring)."""

  name: str
  meter: ChatMeter

  def complete(self, conversations: Sequence[Sequence[Message]],
               max_tokens: int) -> list[Completion]: ...


class LocalChatLLM:
  """A local causal LM answering chats greedily (see the module docstring).

  Args:
    lm: a loaded ``CausalLM``, or what ``llm_zoo.load_llm`` takes (a name registered in
      ``BLACK_BOXES`` with the tag ``'llm'``, a ``.gguf`` file, a model folder).
    name: what ``/v1/models`` reports (default: the model's name).
    max_batch: requests generated together (memory and padding waste grow with it).
  """

  def __init__(self, lm: CausalLM | str, name: str | None = None, max_batch: int = 32):
    self.lm = load_llm(lm) if isinstance(lm, str) else lm
    if max_batch < 1:
      raise ValueError(f"max_batch={max_batch} must be >= 1")
    self.name = name or self.lm.name
    self.max_batch = max_batch
    self.meter = ChatMeter()
    self._lock = threading.Lock()  # one generation at a time (a service calls from threads)

  @property
  def max_positions(self) -> int:
    return self.lm.max_positions

  @functools.cached_property
  def token_bound(self) -> TokenLowerBound | None:
    """A lower bound on a text's token count without tokenizing it (None: the tokenizer
    proves none; see ``models.token_bytes``)."""
    return token_lower_bound(self.lm.tokenizer)

  def encode(self, text: str) -> list[int]:
    return self.lm.tokenizer.encode(text).ids

  def prompt(self, messages: Sequence[Message]) -> str:
    """The text the model continues for this conversation."""
    return self.lm.render(messages)

  def complete(self, conversations: Sequence[Sequence[Message]],
               max_tokens: int | Sequence[int]) -> list[Completion]:
    """Greedy answers to every conversation (batched ``max_batch`` at a time).

    ``max_tokens`` is one limit for all, or one per conversation (a batch decodes to its
    largest; greedy rows do not depend on each other, so each answer equals the one
    asked alone).

    Raises:
      ValueError: a malformed message, or a prompt plus ``max_tokens`` exceeding the
        model's positions.
    """
    limits = ([int(max_tokens)] * len(conversations) if isinstance(max_tokens, (int, np.integer))
              else [int(m) for m in max_tokens])
    if len(limits) != len(conversations) or min(limits, default=1) < 1:
      raise ValueError(f"max_tokens must be >= 1, one for all or one per conversation; got "
                       f"{max_tokens!r} for {len(conversations)} conversations")
    prompts = [self.encode(self.prompt(c)) for c in conversations]
    completions = []
    for lo in range(0, len(prompts), self.max_batch):
      completions += self._complete_ids(prompts[lo:lo + self.max_batch],
                                        limits[lo:lo + self.max_batch])
    with self._lock:
      self.meter.requests += len(completions)
      self.meter.prompt_tokens += sum(c.prompt_tokens for c in completions)
      self.meter.completion_tokens += sum(c.completion_tokens for c in completions)
    return completions

  def _complete_ids(self, prompts: list[list[int]], limits: list[int]) -> list[Completion]:
    max_tokens = max(limits)
    longest = max(len(p) for p in prompts)
    length = -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET
    if length + max_tokens > self.max_positions:
      length = longest  # no room for the bucket's padding: the exact length
    if length + max_tokens > self.max_positions and len(prompts) > 1:
      # Together they do not fit (a long prompt with another's long limit): one at a time.
      return [c for p, m in zip(prompts, limits) for c in self._complete_ids([p], [m])]
    if length + max_tokens > self.max_positions:
      raise ValueError(f"prompt of {longest} tokens + max_tokens={max_tokens} exceeds the "
                       f"model's {self.max_positions} positions")
    rows = 1 << (len(prompts) - 1).bit_length()
    ids, mask = left_pad(list(prompts) + [[0]] * (rows - len(prompts)), length)
    # (padding rows: one real token, outputs discarded)
    with self._lock:
      embeds = self.lm.embed(jnp.asarray(ids))
      out = np.asarray(self.lm.generate(embeds, jnp.asarray(mask), max_tokens))
    completions = []
    for p, row, limit in zip(prompts, out, limits):
      tokens, stopped = self.lm.cut(row.tolist()[:limit])
      completions.append(Completion(self.lm.tokenizer.decode(tokens), len(p),
                                    len(tokens) + stopped, "stop" if stopped else "length"))
    return completions
