"""Instruction family (InstructZero-style, ``task.family='instruction'``): the instruction a
black-box LLM is given, optimised through the soft prompt of an open LLM.

Two ways to run it: registered here as a task family, so ``experiments.train`` runs it
with the generic federated machinery (``build``, ``execution_task``, ``llm_blackbox``);
and the host-side searches of ``search`` / ``experiment`` (``experiments.instruct``),
which add InstructZero's centralized BO baseline. Shared parts: rule-defined and JSON
tasks, scorers, soft prompt -> instruction, execution scoring.
"""

from fedbbpt_jax.tasks.instruction.build import build_instruction_task
from fedbbpt_jax.tasks.instruction.config_check import (check_instruction_config,
                                                        check_instruction_family_config)
from fedbbpt_jax.tasks.instruction.execution_task import InstructionExecution
from fedbbpt_jax.tasks.instruction.llm_blackbox import InstructionBlackBox
from fedbbpt_jax.tasks.protocol import register_family

register_family("instruction", check_instruction_family_config, build_instruction_task)

__all__ = ["InstructionBlackBox", "InstructionExecution", "build_instruction_task",
           "check_instruction_config", "check_instruction_family_config"]
