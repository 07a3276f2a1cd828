"""The visual prompt registry: ``prompt.kind`` -> ``build(canvas_size, image_size, **options)``.

Users register their own generator (a ``PromptGenerator`` builder with the same
signature): ``PROMPTS.register("mine", make_my_prompt)``. Text prompts (discrete,
soft) take the tokenizer and vocabulary instead and are registered by the text
task family.
"""

from __future__ import annotations

from typing import Any, Callable

from fedbbpt_jax.core import Registry
from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.coordinator import make_coordinator_prompt
from fedbbpt_jax.prompts.frame import make_frame_prompt
from fedbbpt_jax.prompts.frame_mixture import make_frame_mixture_prompt

PROMPTS: Registry[Callable[..., PromptGenerator]] = Registry(
    "visual prompt generator", home="fedbbpt_jax.prompts.PROMPTS")
PROMPTS.register("frame", make_frame_prompt)
PROMPTS.register("coordinator", make_coordinator_prompt)
PROMPTS.register("frame_mixture", make_frame_mixture_prompt)


def make_prompt(kind: str, canvas_size: int, image_size: int, **options: Any) -> PromptGenerator:
  """Returns the prompt generator registered as ``kind`` with its options."""
  return PROMPTS.get(kind, "prompt.kind")(canvas_size, image_size, **options)
