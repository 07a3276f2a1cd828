"""Instruction family (InstructZero-style, ``task.family='instruction'``): the instruction a
black-box LLM is given, optimised through the soft prompt of an open LLM.

Registered here as a task family, so ``experiments.train`` runs it through the one driver
with every registered algorithm (federated zero-order ``fedbbpt``, the Bayesian optimisers
``fed_bo`` and ``centralized_bo``, ...): ``build`` makes the bundle, ``execution_task``
its task, ``llm_blackbox`` its black box, ``prompt_kinds`` its prompt kinds (``PROMPTS``
entries tagged ``'instruction'``: ``soft_instruction``, the soft prompt of an open LLM
turned into an instruction by ``prompts.InstructionGenerator``); rule-defined and JSON
tasks, scorers and execution scoring are its parts.
"""

from fedbbpt_jax.tasks.instruction.build import build_instruction_task
from fedbbpt_jax.tasks.instruction.config_check import check_instruction_family_config
from fedbbpt_jax.tasks.instruction.execution_task import InstructionExecution
from fedbbpt_jax.tasks.instruction.llm_blackbox import InstructionBlackBox
from fedbbpt_jax.tasks.protocol import ROLES, register_family

register_family("instruction", check_instruction_family_config, build_instruction_task,
                roles=ROLES, provider="llm")  # the black-box LLM's endpoint and key

__all__ = ["InstructionBlackBox", "InstructionExecution", "build_instruction_task",
           "check_instruction_family_config"]
