"""Soft prompt -> instruction (InstructZero, Chen et al., ICML 2024), on a local causal LM
(``models.causal_lm``: SmolLM2-135M-Instruct offline by default).

A point ``z`` in ``[-1, 1]^d`` (``d = intrinsic_dim``, default 10) goes through a fixed
projection ``A`` (``d x (num_soft_tokens * n_embd)``, entries uniform in [-1, 1] from
``projection_seed``, as InstructZero's ``random_proj='uniform'``) to ``num_soft_tokens``
soft token embeddings, prepended to the embedded exemplar prompt::

    Input: <x1>
    Output: <y1>
    ...
    The instruction was to

The open model continues greedily; the text up to its end-of-text token (or
``max_new_tokens``) is the instruction. ``projection_scale`` multiplies ``Az``:
InstructZero feeds ``Az`` unscaled into a 13B model whose embeddings are much larger;
the default here (``None``) scales it to the spread of the model's own token
embeddings (``std(embedding) / std(Az)`` for uniform ``z``), a choice, stated.

Instructions are cached by ``z`` (float32 bytes): the same point never costs a second
generation (``generations`` / ``cache_hits`` count).

``InstructionSource`` is what the instruction family asks of any instruction prompt kind's
generator; ``InstructionGenerator`` is the one its ``soft_instruction`` kind
(``tasks/instruction/prompt_kinds.py``) builds from ``config.generator``.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models.causal_lm import CausalLM

QUESTION = "The instruction was to"
CHAT_QUESTION = "What was the instruction?"


def demonstrations(exemplars: Sequence[tuple[str, str]]) -> str:
  return "".join(f"Input: {x}\nOutput: {y}\n\n" for x, y in exemplars)


def exemplar_prompt(exemplars: Sequence[tuple[str, str]], lm: CausalLM | None = None) -> str:
  """The demonstration prompt the soft tokens are prepended to (for ``lm``'s kind)."""
  if lm is None or lm.chat_template is None:
    return demonstrations(exemplars) + QUESTION
  return lm.render([{"role": "user", "content": demonstrations(exemplars) + CHAT_QUESTION}]
                   ) + QUESTION


class InstructionSource(Protocol):
  """Points ``z`` in ``[-1, 1]^intrinsic_dim`` -> instructions, cached, with its counters.

  Attributes:
    intrinsic_dim: ``d``, the length of every point.
    exemplars: the ``(input, output)`` demonstrations instructions are induced from (an
      instruction copying one of them is degenerate).
    generations: instructions made so far (cache hits not counted).
  """

  intrinsic_dim: int
  exemplars: tuple[tuple[str, str], ...]
  generations: int

  def generate(self, zs: np.ndarray) -> list[str]:
    """The instruction of every row of ``zs`` ``[N, d]``."""

  def cache_state(self) -> dict[str, str]:
    """The instructions made so far as JSON (saved with every checkpoint)."""

  def load_cache_state(self, state: dict[str, str]) -> None:
    """Adds a ``cache_state`` (a resumed run makes none of them again)."""


class InstructionGenerator:
  """``generate(zs) -> instructions`` (see the module docstring); an ``InstructionSource``.

  Args:
    lm: the open causal LM (``models.causal_lm.CausalLM``).
    exemplars: the demonstrations ``(input, output)`` shown to it.
  """

  def __init__(self, lm: CausalLM, exemplars: Sequence[tuple[str, str]], *,
               intrinsic_dim: int = 10, num_soft_tokens: int = 5, projection_seed: int = 0,
               max_new_tokens: int = 32, projection_scale: float | None = None):
    if intrinsic_dim < 1 or num_soft_tokens < 1 or max_new_tokens < 1:
      raise ValueError(f"intrinsic_dim={intrinsic_dim}, num_soft_tokens={num_soft_tokens} and "
                       f"max_new_tokens={max_new_tokens} must be >= 1")
    self.lm = lm
    self.exemplars = tuple(exemplars)
    self.intrinsic_dim, self.num_soft_tokens = intrinsic_dim, num_soft_tokens
    self.max_new_tokens = max_new_tokens
    self.projection = np.asarray(jax.random.uniform(
        jax.random.key(projection_seed), (intrinsic_dim, num_soft_tokens * lm.hidden_size),
        minval=-1.0, maxval=1.0), np.float32)
    if projection_scale is None:
      projection_scale = lm.embedding_std / (np.sqrt(intrinsic_dim) / 3.0)
    self.projection_scale = float(projection_scale)
    self.prompt = exemplar_prompt(self.exemplars, lm)
    ids = lm.tokenizer.encode(self.prompt).ids
    if len(ids) + num_soft_tokens + max_new_tokens > lm.max_positions:
      raise ValueError(f"the exemplar prompt ({len(ids)} tokens) + {num_soft_tokens} soft tokens "
                       f"+ max_new_tokens={max_new_tokens} exceed the model's "
                       f"{lm.max_positions} positions: use fewer exemplars")
    self.prompt_ids = jnp.asarray([ids], jnp.int32)
    self.cache: dict[bytes, str] = {}
    self.generations = 0
    self.cache_hits = 0

  def cache_state(self) -> dict[str, str]:
    """The instruction cache as JSON (``z``'s float32 bytes in hex -> instruction)."""
    return {key.hex(): text for key, text in self.cache.items()}

  def load_cache_state(self, state: dict[str, str]) -> None:
    """Adds a ``cache_state`` to the cache (a resumed run generates none of it again)."""
    self.cache.update({bytes.fromhex(key): text for key, text in state.items()})

  def soft_tokens(self, zs: np.ndarray) -> jnp.ndarray:
    """``[N, num_soft_tokens, hidden]`` soft embeddings of the points ``zs [N, d]``."""
    flat = self.projection_scale * (jnp.asarray(zs, jnp.float32) @ self.projection)
    return flat.reshape(len(zs), self.num_soft_tokens, -1)

  def _decode(self, zs: jnp.ndarray) -> jnp.ndarray:
    # Not jitted as a whole: lm.embed / lm.generate are, with the weights as arguments
    # (closing over them would compile the weights in as constants).
    n = zs.shape[0]
    tokens = jnp.repeat(self.lm.embed(self.prompt_ids), n, 0)
    embeds = jnp.concatenate([self.soft_tokens(zs), tokens], 1)
    mask = jnp.ones(embeds.shape[:2], bool)
    return self.lm.generate(embeds, mask, self.max_new_tokens)

  def generate(self, zs: np.ndarray) -> list[str]:
    """The instruction of every row of ``zs`` (``[N, intrinsic_dim]``), cached by ``z``."""
    zs = np.asarray(zs, np.float32).reshape(-1, self.intrinsic_dim)
    keys = [z.tobytes() for z in zs]
    new = list(dict.fromkeys(k for k in keys if k not in self.cache))  # each new point once
    self.cache_hits += len(keys) - len(new)
    if new:
      batch = zs[[keys.index(k) for k in new]]
      rows = 1 << (len(new) - 1).bit_length()  # a power of two: few compiled shapes
      padded = np.concatenate([batch, np.zeros((rows - len(new), self.intrinsic_dim),
                                                np.float32)])
      out = np.asarray(self._decode(jnp.asarray(padded)))[:len(new)]
      self.generations += len(new)
      for key, row in zip(new, out.tolist()):
        tokens, _ = self.lm.cut(row)
        text = self.lm.tokenizer.decode(tokens).strip()
        self.cache[key] = text.split("\n", 1)[0].strip()
    return [self.cache[k] for k in keys]
