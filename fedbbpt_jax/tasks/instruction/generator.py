"""Soft prompt -> instruction (InstructZero, methods.md 8.1), on a local causal LM.

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
embeddings (``std(wte) / std(Az)`` for uniform ``z``), a choice, stated.

Instructions are cached by ``z`` (float32 bytes): the same point never costs a second
generation (``generations`` / ``cache_hits`` count). ``degenerate(instruction,
exemplars)`` names why an instruction is unusable (empty, a template marker, a copy of
an exemplar's input or output); such instructions are scored worst without querying.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer

from fedbbpt_jax.models.gpt2 import GPT2LM, greedy_generate, token_embeddings
from fedbbpt_jax.tasks.instruction.scorers import normalise

QUESTION = "The instruction was to"


def exemplar_prompt(exemplars: Sequence[tuple[str, str]]) -> str:
  """The demonstration prompt the soft tokens are prepended to."""
  return "".join(f"Input: {x}\nOutput: {y}\n\n" for x, y in exemplars) + QUESTION


def degenerate(instruction: str, exemplars: Sequence[tuple[str, str]]) -> str | None:
  """Why ``instruction`` is unusable, or None."""
  text = normalise(instruction)
  if not text:
    return "empty"
  if "input:" in instruction.lower() or "output:" in instruction.lower():
    return "contains the exemplar template (Input:/Output:)"
  for x, y in exemplars:
    if text in (normalise(x), normalise(y)):
      return "copies an exemplar"
  return None


class InstructionGenerator:
  """``generate(zs) -> instructions`` (see the module docstring).

  Args:
    model, variables: the open causal LM (``models.gpt2``).
    tokenizer: its ``tokenizers.Tokenizer``.
    exemplars: the demonstrations ``(input, output)`` shown to it.
    eos_token: its end-of-text token.
  """

  def __init__(self, model: GPT2LM, variables: dict, tokenizer: Tokenizer,
               exemplars: Sequence[tuple[str, str]], *, intrinsic_dim: int = 10,
               num_soft_tokens: int = 5, projection_seed: int = 0, max_new_tokens: int = 32,
               projection_scale: float | None = None, eos_token: str = "<|endoftext|>"):
    if intrinsic_dim < 1 or num_soft_tokens < 1 or max_new_tokens < 1:
      raise ValueError(f"intrinsic_dim={intrinsic_dim}, num_soft_tokens={num_soft_tokens} and "
                       f"max_new_tokens={max_new_tokens} must be >= 1")
    self.model, self.variables, self.tokenizer = model, variables, tokenizer
    self.exemplars = tuple(exemplars)
    self.eos_id = tokenizer.token_to_id(eos_token)
    if self.eos_id is None:
      raise ValueError(f"end-of-text token {eos_token!r} is not in the tokenizer's vocabulary")
    d_model = model.config.n_embd
    self.intrinsic_dim, self.num_soft_tokens = intrinsic_dim, num_soft_tokens
    self.max_new_tokens = max_new_tokens
    self.projection = np.asarray(jax.random.uniform(
        jax.random.key(projection_seed), (intrinsic_dim, num_soft_tokens * d_model),
        minval=-1.0, maxval=1.0), np.float32)
    if projection_scale is None:
      wte = np.asarray(variables["params"]["wte"]["embedding"])
      projection_scale = float(wte.std() / (np.sqrt(intrinsic_dim) / 3.0))
    self.projection_scale = float(projection_scale)
    ids = tokenizer.encode(exemplar_prompt(self.exemplars)).ids
    self.prompt_ids = jnp.asarray([ids], jnp.int32)
    self.cache: dict[bytes, str] = {}
    self.generations = 0
    self.cache_hits = 0
    self._decode = jax.jit(self._decode_ids)

  def soft_tokens(self, zs: np.ndarray) -> jnp.ndarray:
    """``[N, num_soft_tokens, n_embd]`` soft embeddings of the points ``zs [N, d]``."""
    flat = self.projection_scale * (jnp.asarray(zs, jnp.float32) @ self.projection)
    return flat.reshape(len(zs), self.num_soft_tokens, -1)

  def _decode_ids(self, zs: jnp.ndarray) -> jnp.ndarray:
    n = zs.shape[0]
    tokens = jnp.repeat(token_embeddings(self.model, self.variables, self.prompt_ids), n, 0)
    embeds = jnp.concatenate([self.soft_tokens(zs), tokens], 1)
    mask = jnp.ones(embeds.shape[:2], bool)
    return greedy_generate(self.model, self.variables, embeds, mask, self.max_new_tokens)

  def generate(self, zs: np.ndarray) -> list[str]:
    """The instruction of every row of ``zs`` (``[N, intrinsic_dim]``), cached by ``z``."""
    zs = np.asarray(zs, np.float32).reshape(-1, self.intrinsic_dim)
    keys = [z.tobytes() for z in zs]
    new = list(dict.fromkeys(k for k in keys if k not in self.cache))  # each new point once
    self.cache_hits += len(keys) - len(new)
    if new:
      rows = np.asarray(self._decode(jnp.asarray(zs[[keys.index(k) for k in new]])))
      self.generations += len(new)
      for key, row in zip(new, rows.tolist()):
        tokens = row[:row.index(self.eos_id)] if self.eos_id in row else row
        self.cache[key] = self.tokenizer.decode(tokens).strip()
    return [self.cache[k] for k in keys]
