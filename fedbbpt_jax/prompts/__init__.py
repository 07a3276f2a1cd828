"""Prompt generators (Flax, pure init/apply), how a visual prompt meets an input, the soft
prompt -> instruction generator, and ``PROMPTS``, every family's prompt kinds."""

from fedbbpt_jax.prompts.base import PromptGenerator, num_params
from fedbbpt_jax.prompts.canvas import apply_prompt, place_on_canvas, region_mask
from fedbbpt_jax.prompts.discrete import make_discrete_prompt, project_to_simplex, project_tree
from fedbbpt_jax.prompts.instruction_generator import InstructionGenerator
from fedbbpt_jax.prompts.registry import PROMPTS, make_prompt
from fedbbpt_jax.prompts.soft import make_soft_prompt, projection_std, random_projection
from fedbbpt_jax.prompts.token_prompts import PromptedTask, TokenPromptSetup
from fedbbpt_jax.prompts.vocabulary import VOCABULARIES, candidate_vocabulary

__all__ = ["InstructionGenerator", "PROMPTS", "PromptGenerator", "PromptedTask",
           "TokenPromptSetup", "VOCABULARIES", "apply_prompt", "candidate_vocabulary",
           "make_discrete_prompt", "make_prompt", "num_params", "place_on_canvas",
           "project_to_simplex", "project_tree", "projection_std", "random_projection",
           "region_mask", "make_soft_prompt"]
