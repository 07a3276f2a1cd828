"""Classification with a black-box masked LM and a discrete prompt (BDPL's GLUE setting).

Inputs are token ids tokenised once on the host, with a reserved slot of ``P``
positions for the prompt right after ``<s>``, where BDPL puts its prompt tokens::

    <s> [slot_1 ... slot_P] template(texts) </s> <pad> ...          ([B, T] int32)

e.g. SST-2: ``<s> [P] a gorgeous film It was <mask>. </s>``. The jitted path only
writes the prompt's ids into the slot; zero-shot removes the slot (the row is
shifted left by ``P`` and padded) so the black box sees ``<s> template(texts) </s>``.
The black box (a frozen RoBERTa masked LM) returns the logits at ``<mask>``
restricted to the verbalizer ids, one per class; the loss is cross-entropy.

One zero-order step scores all ``I`` sampled prompts on a minibatch of ``B`` rows
in ONE black-box call of ``I * B`` rows (``candidate_losses``).

Example:
    >>> task = MaskedLMClassification(blackbox, prompt, prompt_length=10, pad_id=1,
    ...                               metric="f1")
    >>> logits = task.logits(theta, x)                # [B, C], the arg-max prompt
    >>> losses = task.candidate_losses(samples, {"x": x, "y": y})   # [I]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.prompts import PromptGenerator
from fedbbpt_jax.tasks.scoring import cross_entropy, mean_candidate_losses

PyTree = Any


@dataclasses.dataclass(frozen=True)
class MaskedLMClassification:
  """Wires a masked-LM black box (verbalizer logits) and a discrete prompt together.

  Attributes:
    blackbox: ids ``[N, T]`` -> ``[N, C]`` logits of the verbalizer tokens at ``<mask>``.
    prompt: generator whose ``apply(params_or_candidate, None)`` gives ``[P]`` ids.
    prompt_length: ``P``, the width of the reserved slot at positions ``1..P``.
    pad_id: id that pads rows (the black box masks it out).
    metric: test metric name (``tasks.glue.metrics.TASK_METRICS``), reported by
      ``tasks.evaluation.Evaluator`` beside accuracy and macro-F1.
  """

  blackbox: BlackBox
  prompt: PromptGenerator
  prompt_length: int
  pad_id: int
  metric: str = "accuracy"

  @property
  def max_length(self) -> int:
    return self.blackbox.input_shape[0]

  @property
  def num_classes(self) -> int:
    return self.blackbox.output_size

  def insert_prompt(self, prompt_ids: jnp.ndarray | None, rows: jnp.ndarray) -> jnp.ndarray:
    """Black-box inputs ``[B, T]``: ``prompt_ids [P]`` written into the slot of ``rows``.

    ``prompt_ids=None`` (zero-shot) drops the slot instead: ``<s> body </s>``.
    """
    rows = rows.astype(jnp.int32)
    b, p = rows.shape[0], self.prompt_length
    if prompt_ids is None:
      pad = jnp.full((b, p), self.pad_id, jnp.int32)
      return jnp.concatenate([rows[:, :1], rows[:, 1 + p:], pad], axis=1)
    prompt = jnp.broadcast_to(prompt_ids.astype(jnp.int32), (b, p))
    return jax.lax.dynamic_update_slice(rows, prompt, (0, 1))

  def prompt_ids(self, params: PyTree) -> jnp.ndarray:
    """Token ids ``[P]`` of the prompt ``params`` stands for (per-position arg-max)."""
    return self.prompt.apply(params, None)

  def logits(self, params: PyTree | None, rows: jnp.ndarray) -> jnp.ndarray:
    """Verbalizer logits ``[B, C]`` (``params=None``: zero-shot, no prompt)."""
    ids = None if params is None else self.prompt_ids(params)
    return self.blackbox(self.insert_prompt(ids, rows))

  def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Per-example cross-entropy over the verbalizers."""
    return cross_entropy(logits, labels)

  def candidate_losses(self, candidates: PyTree, batch: dict) -> jnp.ndarray:
    """Mean cross-entropy ``[I]`` of every candidate prompt on one minibatch: one call."""
    prompts = jax.vmap(self.prompt_ids)(candidates)                        # [I, P]
    seqs = jax.vmap(lambda p: self.insert_prompt(p, batch["x"]))(prompts)  # [I, B, T]
    return mean_candidate_losses(self.blackbox, seqs, batch["y"], lambda out: out, self.loss)
