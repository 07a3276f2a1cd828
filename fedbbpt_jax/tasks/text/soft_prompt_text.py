"""Text classification with a BBT-style continuous soft prompt (embedding-input black box).

Same rows, verbalizers, logits and loss as ``TextClassification``; the prompt
positions right after ``[CLS]`` hold continuous embeddings instead of token ids::

    e([CLS]) p_1 ... p_P  e(r_1) ... e(r_n)  e([SEP])  0 ...      ([L, H], L = P + T + 2)

where ``e`` is the black box's word-embedding lookup, ``p = prompt.apply(params)``
(``[P, H]``, e.g. ``base + reshape(Az)``) and padding rows are all zeros (the black
box masks them). With ``params=None`` (zero-shot) the row has no prompt positions,
exactly as in ``TextClassification``. The black box is a frozen local surrogate
(``blackbox.text_zoo.make_embedding_encoder``): a provider API takes tokens, not
embeddings.

One zero-order step scores all ``I`` candidates on a minibatch of ``B`` reviews in
ONE black-box call of ``I * B`` rows (``candidate_losses``); the review embeddings are
looked up once and shared by the candidates.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.tasks.scoring import mean_candidate_losses
from fedbbpt_jax.tasks.text.text_classification import TextClassification

PyTree = Any


@dataclasses.dataclass(frozen=True)
class SoftPromptTextClassification(TextClassification):
  """``TextClassification`` whose prompt is ``[P, H]`` embeddings (black box on embeddings).

  Attributes (beyond ``TextClassification``'s):
    blackbox: ``EmbeddingEncoderBlackBox`` (inputs ``[N, L, H]``, ``embed(ids)``).
    prompt: generator whose ``apply(params, None)`` gives ``[P, H]`` embeddings.
  """

  def embed_rows(self, ids: jnp.ndarray) -> jnp.ndarray:
    """Black-box inputs ``[..., L, H]`` of id rows: word embeddings, zeros on padding."""
    emb = self.blackbox.embed(ids)
    return emb * (ids != self.pad_id)[..., None].astype(emb.dtype)

  def rows(self, prompt: jnp.ndarray | None, reviews: jnp.ndarray) -> jnp.ndarray:
    """Inputs ``[B, L, H]`` for one prompt ``[P, H]`` (None: no prompt) and reviews ``[B, T]``."""
    return self.candidate_rows(None if prompt is None else prompt[None], reviews)[0]

  def candidate_rows(self, prompts: jnp.ndarray | None, reviews: jnp.ndarray) -> jnp.ndarray:
    """Inputs ``[I, B, L, H]`` for ``I`` prompts ``[I, P, H]`` (None: ``[1, B, L, H]``, no prompt).

    Placeholder ids hold the prompt positions; their embeddings are replaced by the prompts.
    """
    if prompts is None:
      return self.embed_rows(self.assemble(None, reviews))[None]
    placeholder = jnp.full((self.prompt_length,), self.cls_id, jnp.int32)
    base = self.embed_rows(self.assemble(placeholder, reviews))        # [B, L, H]
    num = prompts.shape[0]
    rows = jnp.broadcast_to(base[None], (num,) + base.shape)
    tiled = jnp.broadcast_to(prompts[:, None].astype(rows.dtype),
                             (num, base.shape[0]) + prompts.shape[1:])
    return jax.lax.dynamic_update_slice_in_dim(rows, tiled, 1, axis=2)

  def prompt_embeddings(self, params: PyTree) -> jnp.ndarray:
    """The ``[P, H]`` prompt embeddings ``params`` stand for."""
    return self.prompt.apply(params, None)

  def prompt_ids(self, params: PyTree) -> jnp.ndarray:
    raise TypeError("a soft prompt has no token ids; use prompt_embeddings")

  def logits(self, params: PyTree | None, reviews: jnp.ndarray) -> jnp.ndarray:
    """Task logits ``[B, C]`` (``params=None``: zero-shot)."""
    prompt = None if params is None else self.prompt_embeddings(params)
    return self.similarities_to_logits(self.blackbox(self.rows(prompt, reviews)))

  def candidate_losses(self, candidates: PyTree, batch: dict) -> jnp.ndarray:
    """Mean cross-entropy of every candidate on one minibatch: one black-box call."""
    prompts = jax.vmap(self.prompt_embeddings)(candidates)              # [I, P, H]
    rows = self.candidate_rows(prompts, batch["x"])                     # [I, B, L, H]
    return mean_candidate_losses(self.blackbox, rows, batch["y"], self.similarities_to_logits,
                                 self.loss)
