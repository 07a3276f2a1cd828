"""The instruction family's prompt kinds (``prompts.PROMPTS`` entries with tag ``'instruction'``).

A kind is ``build(setup: InstructionSetup) -> PromptedInstruction``: from the config and
the task's exemplars, the generator that turns a point ``z`` into an instruction (a
``prompts.InstructionSource``, whose instructions the black-box LLM executes), the
point's initial value and the projection applied after every step.

* ``soft_instruction``: InstructZero's soft prompt ``z`` in ``[-1, 1]^d`` of an open
  causal LM (``prompts.InstructionGenerator`` from ``config.generator``); training starts
  at ``z = 0``, the zero-shot instruction, and every step is clipped back into the cube.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fedbbpt_jax.prompts import PROMPTS, InstructionGenerator
from fedbbpt_jax.prompts.instruction_generator import InstructionSource
from fedbbpt_jax.tasks.instruction.llms import load_model

PyTree = Any


class InstructionSetup(NamedTuple):
  """What every instruction prompt kind starts from.

  Attributes:
    config: the experiment config.
    exemplars: the task's first ``task.exemplars`` ``(input, output)`` pairs, shown to the
      generator (never trained or tested on).
  """

  config: Any
  exemplars: tuple[tuple[str, str], ...]


class PromptedInstruction(NamedTuple):
  """A kind's part of the bundle: the generator and the point's start and projection.

  ``init_prompt(key)`` and ``project(params)`` work on ``{"z": [generator.intrinsic_dim]}``.
  """

  generator: InstructionSource
  init_prompt: Callable[[jax.Array], PyTree]
  project: Callable[[PyTree], PyTree] | None


@PROMPTS.register("soft_instruction", tags=("instruction",))
def soft_instruction(setup: InstructionSetup) -> PromptedInstruction:
  """InstructZero's soft prompt of ``config.generator``'s open LLM, from ``z = 0``."""
  g = setup.config.generator
  generator = InstructionGenerator(load_model(g.model_path, "generator.model_path"),
                                   setup.exemplars, intrinsic_dim=g.intrinsic_dim,
                                   num_soft_tokens=g.num_soft_tokens,
                                   max_new_tokens=g.max_new_tokens,
                                   projection_seed=g.projection_seed)
  return PromptedInstruction(
      generator, init_prompt=lambda key: {"z": jnp.zeros((g.intrinsic_dim,), jnp.float32)},
      project=lambda params: {"z": jnp.clip(params["z"], -1.0, 1.0)})
