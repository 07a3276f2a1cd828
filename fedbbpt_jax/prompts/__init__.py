"""Prompt generators (Flax, pure init/apply) and how a visual prompt meets an input."""

from fedbbpt_jax.prompts.base import PromptGenerator, num_params
from fedbbpt_jax.prompts.canvas import apply_prompt, place_on_canvas, region_mask
from fedbbpt_jax.prompts.registry import PROMPTS, make_prompt

__all__ = ["PROMPTS", "PromptGenerator", "apply_prompt", "make_prompt", "num_params",
           "place_on_canvas", "region_mask"]
