"""The instruction family's ``Task``: execution accuracy as a two-class task, so the generic
round program, evaluator and baselines run it unchanged.

The prompt is ``{"z": [d]}`` (the soft prompt of the open LLM, kept in ``[-1, 1]^d`` by the
bundle's projection); an input is a task example's index, its label 1 ("answered
right"). Through ``InstructionBlackBox`` a point and an example give the execution score
``s`` in ``[0, 1]``; the task's logits are ``[1 - s, s]`` and the loss ``1 - s`` on label 1,
so the mean test loss is one minus the mean execution score, and accuracy (``s > 1/2``)
is the execution accuracy of a 0/1 scorer (exact match, contains). ``params=None`` is
the zero-shot instruction, the one ``z = 0`` gives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.tasks.instruction.llm_blackbox import InstructionBlackBox, instruction_rows

PyTree = Any


@dataclasses.dataclass(frozen=True)
class InstructionExecution:
  """Execution score of the instruction a point ``z`` yields (see the module docstring)."""

  blackbox: InstructionBlackBox
  dim: int

  @property
  def num_classes(self) -> int:
    return 2

  def _z(self, params: PyTree | None) -> jnp.ndarray:
    return jnp.zeros((self.dim,), jnp.float32) if params is None else params["z"]

  def scores(self, params: PyTree | None, x: jnp.ndarray) -> jnp.ndarray:
    """Execution scores ``[B]`` of examples ``x [B]`` under ``params``' instruction."""
    return self.blackbox(instruction_rows(self._z(params), x))[:, 0]

  def logits(self, params: PyTree | None, x: jnp.ndarray) -> jnp.ndarray:
    s = self.scores(params, x)
    return jnp.stack([1.0 - s, s], axis=-1)

  def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """``1 - (logit of the label)``: one minus the score on label 1."""
    return 1.0 - jnp.take_along_axis(logits, labels[..., None].astype(jnp.int32), -1)[..., 0]

  def candidate_losses(self, candidates: PyTree, batch: dict) -> jnp.ndarray:
    """Mean loss ``[K]`` of ``K`` candidate points on one minibatch: one black-box call."""
    rows = jax.vmap(lambda z: instruction_rows(z, batch["x"]))(candidates["z"])   # [K, B, d+1]
    k, b = rows.shape[:2]
    s = self.blackbox(rows.reshape(k * b, -1))[:, 0].reshape(k, b)
    logits = jnp.stack([1.0 - s, s], axis=-1)
    return self.loss(logits, jnp.broadcast_to(batch["y"], (k, b))).mean(axis=1)
