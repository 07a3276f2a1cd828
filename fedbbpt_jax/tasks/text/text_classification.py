"""Text classification through a black-box sentence encoder and a discrete prompt.

Inputs are reviews as word-piece ids ``x [B, T]`` (no special tokens, padded with
``pad_id``). A prompt of ``P`` token ids goes in front of the review, right after
``[CLS]``::

    [CLS] p_1 ... p_P  r_1 ... r_n  [SEP] [PAD] ...        (length L = P + T + 2)

so ``T = L - P - 2`` word pieces of each review are kept. Zero-shot uses the same
review pieces without a prompt (``[CLS] r_1 ... r_n [SEP] [PAD] ...``).

The black box returns unit-norm embeddings; the task's logits are the cosine
similarities to per-class verbalizer embeddings (computed once through the same
black box, unprompted) divided by a temperature; the loss is cross-entropy.

One zero-order step scores all ``I`` candidate prompts on a minibatch of ``B``
reviews in ONE black-box call of ``I * B`` rows (``candidate_losses``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.prompts import PromptGenerator
from fedbbpt_jax.tasks.scoring import cross_entropy, mean_candidate_losses

PyTree = Any


def review_pieces(encode, texts: list[str], review_length: int, pad_id: int, cls_id: int,
                  sep_id: int) -> np.ndarray:
  """Word-piece ids ``[N, review_length]`` of ``texts``, truncated and padded, no specials.

  Args:
    encode (Callable): ``texts -> (ids, mask)`` padding to ``review_length + 2`` with
      ``[CLS]``/``[SEP]`` (e.g. ``TextTokenizer(review_length + 2)``).
  """
  ids, _ = encode(texts)
  if ids.shape[1] != review_length + 2:
    raise ValueError(f"tokenizer pads to {ids.shape[1]}, expected {review_length + 2}")
  body = ids[:, 1:-1].copy()
  body[(body == sep_id) | (body == cls_id)] = pad_id
  return body.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class TextClassification:
  """Wires a text black box, a discrete prompt and verbalizer embeddings together.

  Attributes:
    blackbox: sentence encoder on ids ``[N, L]`` returning unit-norm embeddings.
    prompt: generator whose ``apply(params_or_candidate, None)`` gives ``[P]`` ids.
    prompt_length: ``P``.
    class_embeddings: ``[C, H]`` unit-norm verbalizer embeddings.
    cls_id, sep_id, pad_id: special-token ids of the black box's tokenizer.
    temperature: softmax temperature of the cosine similarities.
  """

  blackbox: BlackBox
  prompt: PromptGenerator
  prompt_length: int
  class_embeddings: jnp.ndarray
  cls_id: int
  sep_id: int
  pad_id: int
  temperature: float = 0.05

  @property
  def max_length(self) -> int:
    return self.blackbox.input_shape[0]

  @property
  def review_length(self) -> int:
    """Word pieces of a review kept after ``[CLS]``, the prompt and ``[SEP]``."""
    return self.max_length - self.prompt_length - 2

  @property
  def num_classes(self) -> int:
    return self.class_embeddings.shape[0]

  def assemble(self, prompt_ids: jnp.ndarray | None, reviews: jnp.ndarray) -> jnp.ndarray:
    """Black-box inputs ``[B, L]`` for one prompt ``[P]`` (None: no prompt) and reviews."""
    b = reviews.shape[0]
    cls = jnp.full((b, 1), self.cls_id, jnp.int32)
    if prompt_ids is None:
      tail = jnp.full((b, self.prompt_length + 1), self.pad_id, jnp.int32)
      seq, start = jnp.concatenate([cls, reviews, tail], axis=1), 1
    else:
      prompt = jnp.broadcast_to(prompt_ids.astype(jnp.int32), (b, self.prompt_length))
      pad = jnp.full((b, 1), self.pad_id, jnp.int32)
      seq, start = jnp.concatenate([cls, prompt, reviews, pad], axis=1), 1 + self.prompt_length
    n = jnp.sum(reviews != self.pad_id, axis=1, keepdims=True)
    return jnp.where(jnp.arange(seq.shape[1]) == start + n, self.sep_id, seq)

  def prompt_ids(self, params: PyTree) -> jnp.ndarray:
    """Token ids ``[P]`` of the prompt ``params`` stands for (mode of a distribution)."""
    return self.prompt.apply(params, None)

  def similarities_to_logits(self, embeddings: jnp.ndarray) -> jnp.ndarray:
    return embeddings @ self.class_embeddings.T / self.temperature

  def logits(self, params: PyTree | None, reviews: jnp.ndarray) -> jnp.ndarray:
    """Task logits ``[B, C]`` (``params=None``: zero-shot)."""
    ids = None if params is None else self.prompt_ids(params)
    return self.similarities_to_logits(self.blackbox(self.assemble(ids, reviews)))

  def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Per-example cross-entropy."""
    return cross_entropy(logits, labels)

  def candidate_losses(self, candidates: PyTree, batch: dict) -> jnp.ndarray:
    """Mean cross-entropy of every candidate prompt on one minibatch: one black-box call."""
    prompts = jax.vmap(self.prompt_ids)(candidates)                       # [I, P]
    seqs = jax.vmap(lambda p: self.assemble(p, batch["x"]))(prompts)     # [I, B, L]
    return mean_candidate_losses(self.blackbox, seqs, batch["y"], self.similarities_to_logits,
                                 self.loss)
