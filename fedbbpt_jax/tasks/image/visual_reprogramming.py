"""Visual reprogramming task: classify small grayscale images with a frozen ImageNet model.

Data flow of one zero-order step (all candidates, one black-box call)::

    uint8 images [B,h,w] --place_on_canvas--> [B,S,S,3] in [0,1]
        --prompt.features (frozen, once)--> z
    candidates [Nc, ...] --vmap(prompt.apply)--> deltas [Nc, B|1, S, S, 3]
        --clip(x + delta)--> [Nc*B, S, S, 3] --black box--> [Nc*B, 1000]
        --@ label_map [1000, T]--> [Nc, B, T] --cross-entropy--> losses [Nc]

Zero-shot is the same pipeline and mapping without a prompt.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.prompts import PromptGenerator, apply_prompt, place_on_canvas
from fedbbpt_jax.tasks.scoring import cross_entropy, mean_candidate_losses

PyTree = Any


@dataclasses.dataclass(frozen=True)
class VisualReprogramming:
  """Wires a black box, a prompt generator, the canvas and a label mapping together.

  Attributes:
    blackbox: image classifier taking ``[N, S, S, 3]`` pixels in [0, 1].
    prompt: the prompt generator.
    image_size: side the task image is resized to inside the canvas.
    label_map: ``[num_sources, num_classes]`` matrix (see ``label_mapping``).
    background: canvas value outside the image window.
  """

  blackbox: BlackBox
  prompt: PromptGenerator
  image_size: int
  label_map: jnp.ndarray
  background: float = 0.0
  loss_temperature: float = 0.0

  def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Per-example training loss on task logits.

    ``loss_temperature == 0``: plain cross-entropy. ``> 0``: cross-entropy of
    ``temperature * standardise(logits)`` (zero mean, unit spread per example). The
    scale of the logits then cannot change the loss, so a prompt cannot lower it by
    merely making the model less confident; only the ranking and relative margins
    of the labels count, which is what accuracy measures.
    """
    if self.loss_temperature > 0:
      centred = logits - jnp.mean(logits, axis=-1, keepdims=True)
      spread = jnp.sqrt(jnp.mean(centred ** 2, axis=-1, keepdims=True) + 1e-12)
      logits = self.loss_temperature * centred / spread
    return cross_entropy(logits, labels)

  @property
  def state(self) -> dict[str, jnp.ndarray]:
    """What an iterative re-mapping changes: the label map (see ``tasks.task_state``)."""
    return {"label_map": self.label_map}

  def with_state(self, state: dict[str, jnp.ndarray]) -> "VisualReprogramming":
    return dataclasses.replace(self, label_map=state["label_map"])

  @property
  def canvas_size(self) -> int:
    return self.blackbox.input_shape[0]

  @property
  def num_classes(self) -> int:
    return self.label_map.shape[1]

  def canvas(self, images: jnp.ndarray) -> jnp.ndarray:
    return place_on_canvas(images, self.canvas_size, self.image_size, self.background)

  def source_logits(self, params: PyTree | None, images: jnp.ndarray) -> jnp.ndarray:
    """Black-box outputs for prompted images (``params=None``: no prompt)."""
    x = self.canvas(images)
    if params is not None:
      x = apply_prompt(x, self.prompt.apply(params, self.prompt.features(x)))
    return self.blackbox(x)

  def logits(self, params: PyTree | None, images: jnp.ndarray) -> jnp.ndarray:
    """Task logits ``[B, num_classes]`` (``params=None``: zero-shot)."""
    return self.source_logits(params, images) @ self.label_map

  def candidate_losses(self, candidates: PyTree, batch: dict) -> jnp.ndarray:
    """Mean cross-entropy of every candidate on one minibatch: one black-box call."""
    x = self.canvas(batch["x"])
    z = self.prompt.features(x)
    deltas = jax.vmap(lambda p: self.prompt.apply(p, z))(candidates)
    prompted = apply_prompt(x[None], deltas)                          # [I, B, S, S, 3]
    return mean_candidate_losses(self.blackbox, prompted, batch["y"],
                                 lambda out: out @ self.label_map, self.loss)
