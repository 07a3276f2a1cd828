"""The prompt registry: every ``prompt.kind`` of every family, tagged with its family.

An entry's tag says which family builds with it, and so what it is called with:

* ``'image'`` (frame, intrinsic_frame, coordinator, frame_mixture, blackvip):
  ``build(canvas_size, image_size, **options) -> PromptGenerator``, registered here;
* ``'text'`` (discrete, soft): ``build(setup: TextSetup) -> PromptedTask`` (the text
  family's shared set-up in, see ``tasks/text/prompt_kinds.py``, which registers ``soft``;
  the prompted task out, ``token_prompts.PromptedTask``);
* ``'glue'`` (discrete): ``build(setup: GlueSetup) -> PromptedTask`` (the GLUE family's
  set-up, ``tasks/glue/prompt_setup.py``);
* ``'instruction'`` (soft_instruction): ``build(setup: InstructionSetup) ->
  PromptedInstruction`` (the task's exemplars in; the generator ``z -> instruction``, the
  prompt's initialisation and projection out), registered by
  ``tasks/instruction/prompt_kinds.py``.

``discrete`` (BDPL's categorical prompt, ``token_prompts.discrete_prompt``) carries both
the ``'text'`` and the ``'glue'`` tag: it is built from what both families' set-ups offer
(``token_prompts.TokenPromptSetup``: candidate vocabulary, token-id task, wording).

A family's config check accepts the names with its tag, and its refusal says how to
register one: ``PROMPTS.register("mine", make_my_prompt, tags=("image",))``.
"""

from __future__ import annotations

from typing import Any, Callable

from fedbbpt_jax.core import Registry
from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.blackvip import make_blackvip_prompt
from fedbbpt_jax.prompts.coordinator import make_coordinator_prompt
from fedbbpt_jax.prompts.frame import make_frame_prompt
from fedbbpt_jax.prompts.frame_mixture import make_frame_mixture_prompt
from fedbbpt_jax.prompts.intrinsic_frame import make_intrinsic_frame_prompt
from fedbbpt_jax.prompts.token_prompts import discrete_prompt

PROMPTS: Registry[Callable[..., Any]] = Registry("prompt kind", home="fedbbpt_jax.prompts.PROMPTS")
# The prompt fields only some kinds read, with their defaults (refused when set for a kind
# that ignores them, see ``core.fields.refuse_unread``).
ENCODER_READS = {"prompt.encoder_weights": ""}
PROMPTS.register("frame", make_frame_prompt, tags=("image",))
PROMPTS.register("coordinator", make_coordinator_prompt, tags=("image",), reads=ENCODER_READS)
PROMPTS.register("frame_mixture", make_frame_mixture_prompt, tags=("image",),
                 reads=ENCODER_READS)
PROMPTS.register("blackvip", make_blackvip_prompt, tags=("image",),
                 reads={**ENCODER_READS, "prompt.bn": "example"})
PROMPTS.register("intrinsic_frame", make_intrinsic_frame_prompt, tags=("image",),
                 reads={"prompt.intrinsic_dim": 48, "prompt.rank": 2})
PROMPTS.register("discrete", discrete_prompt, tags=("text", "glue"))


def make_prompt(kind: str, canvas_size: int, image_size: int, **options: Any) -> PromptGenerator:
  """Returns the image prompt generator registered as ``kind`` with its options."""
  return PROMPTS.get(kind, "prompt.kind")(canvas_size, image_size, **options)
