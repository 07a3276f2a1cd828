"""A black-box LLM as chat completions: the interface, and the local Flax backend.

``ChatLLM.complete(conversations, max_tokens) -> [Completion]`` is what the
instruction track calls, whichever backend answers: this module's ``LocalChatLLM``
(a GPT-2 family model from a local folder, greedy decoding) or ``llm_remote.ChatClient``
(any OpenAI-compatible ``/v1/chat/completions`` endpoint, e.g. ``serve.chat`` serving a
``LocalChatLLM``). A conversation is a list of ``{"role", "content"}`` messages; the
local backend renders it with ``chat_prompt`` (one ``role: content`` line per message,
then ``assistant:``) and stops at the end-of-text token or after ``max_tokens``.

Prompts are left-padded to a multiple of ``PROMPT_BUCKET`` tokens and the batch to a
power of two, so a long run compiles a handful of programs, not one per request.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer

from fedbbpt_jax.models.gpt2 import GPT2LM, greedy_generate, load_gpt2, token_embeddings

PROMPT_BUCKET = 16
Message = dict  # {"role": str, "content": str}


@dataclasses.dataclass(frozen=True)
class Completion:
  """One answer and its token counts (as an OpenAI-compatible API reports them)."""

  text: str
  prompt_tokens: int
  completion_tokens: int
  finish_reason: str  # 'stop' (end-of-text) | 'length' (max_tokens reached)


class ChatLLM(Protocol):
  """A black-box LLM answering conversations (see the module docstring)."""

  name: str

  def complete(self, conversations: Sequence[Sequence[Message]],
               max_tokens: int) -> list[Completion]: ...


def chat_prompt(messages: Sequence[Message]) -> str:
  """The plain-text prompt of a conversation for a base (non-chat) causal LM."""
  for m in messages:
    if set(m) - {"role", "content", "name"} or not isinstance(m.get("content"), str):
      raise ValueError(f"a message is {{'role': str, 'content': str}}, got {m!r}")
  return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


class LocalChatLLM:
  """A GPT-2 family model from ``model_dir`` with its ``tokenizer.json``, greedy.

  Args:
    model_dir: ``config.json`` + ``model.safetensors`` (``models.gpt2.load_gpt2``).
    tokenizer_file: a ``tokenizers`` JSON file (default ``model_dir/tokenizer.json``).
    eos_token: the end-of-text token (generation stops there).
    name: what ``/v1/models`` reports.
  """

  def __init__(self, model_dir: str, tokenizer_file: str | None = None,
               eos_token: str = "<|endoftext|>", name: str = "local-gpt2"):
    self.model, self.variables = load_gpt2(model_dir)
    self.tokenizer = Tokenizer.from_file(tokenizer_file or f"{model_dir}/tokenizer.json")
    self.eos_id = self.tokenizer.token_to_id(eos_token)
    if self.eos_id is None:
      raise ValueError(f"end-of-text token {eos_token!r} is not in the tokenizer's vocabulary")
    self.name = name
    self._generate = jax.jit(self._generate_ids, static_argnums=(2,))
    self._lock = threading.Lock()  # one generation at a time (a service calls from threads)

  @property
  def max_positions(self) -> int:
    return self.model.config.n_positions

  def _generate_ids(self, ids: jnp.ndarray, mask: jnp.ndarray, max_tokens: int) -> jnp.ndarray:
    embeds = token_embeddings(self.model, self.variables, ids)
    return greedy_generate(self.model, self.variables, embeds, mask, max_tokens)

  def encode(self, text: str) -> list[int]:
    return self.tokenizer.encode(text).ids

  def complete(self, conversations: Sequence[Sequence[Message]],
               max_tokens: int) -> list[Completion]:
    """Greedy answers to every conversation (one batched generation).

    Raises:
      ValueError: a prompt plus ``max_tokens`` exceeds the model's positions.
    """
    prompts = [self.encode(chat_prompt(c)) for c in conversations]
    longest = max(len(p) for p in prompts)
    length = -(-longest // PROMPT_BUCKET) * PROMPT_BUCKET
    if length + max_tokens > self.max_positions:
      length = longest  # no room for the bucket's padding: the exact length
    if length + max_tokens > self.max_positions:
      raise ValueError(f"prompt of {longest} tokens + max_tokens={max_tokens} exceeds the "
                       f"model's {self.max_positions} positions")
    rows = 1 << (len(prompts) - 1).bit_length()
    ids = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length), bool)
    for i, p in enumerate(prompts):
      ids[i, length - len(p):], mask[i, length - len(p):] = p, True
    mask[len(prompts):, -1] = True  # padding rows: one real token, outputs discarded
    with self._lock:
      out = np.asarray(self._generate(jnp.asarray(ids), jnp.asarray(mask), int(max_tokens)))
    completions = []
    for p, row in zip(prompts, out):
      row = row.tolist()
      stop = row.index(self.eos_id) if self.eos_id in row else None
      tokens = row if stop is None else row[:stop]
      completions.append(Completion(self.tokenizer.decode(tokens), len(p),
                                    len(tokens) + (stop is not None),
                                    "length" if stop is None else "stop"))
    return completions
