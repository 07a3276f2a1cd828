"""Builds a prompt generator from its config name."""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.coordinator import make_coordinator_prompt
from fedbbpt_jax.prompts.frame import make_frame_prompt

PROMPTS = ("coordinator", "frame")


def make_prompt(kind: str, canvas_size: int, image_size: int, **options: Any) -> PromptGenerator:
  """Returns the prompt generator ``kind`` (one of ``PROMPTS``) with its options."""
  if kind == "frame":
    return make_frame_prompt(canvas_size, image_size, **options)
  if kind == "coordinator":
    return make_coordinator_prompt(canvas_size, image_size, **options)
  raise ValueError(f"unknown prompt kind {kind!r}; choose one of {list(PROMPTS)}")
