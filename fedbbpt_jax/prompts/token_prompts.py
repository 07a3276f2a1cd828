"""Prompt kinds over token ids, and ``discrete``, the one the text and GLUE families share.

A text or GLUE prompt kind (tag ``'text'`` or ``'glue'``) is ``build(setup) -> PromptedTask``.
Each family's set-up offers what any prompt of ``P`` token ids needs (``TokenPromptSetup``):
the config, the family's candidate vocabulary (from ``config.prompt.vocabulary*``), the
family's task on its token-id black box for such a prompt, and the summary entries that
describe a prompt's ids. ``discrete`` (BDPL's categorical prompt over the candidates,
projected back onto the simplex after every step) is built from those alone, so one
entry, tagged with both families, serves both: the text family's MiniLM sentence
encoder and the GLUE family's RoBERTa masked LM each give their own vocabulary, task
and wording.

Example (a user's GLUE kind: a discrete prompt over their own candidate ids)::

    def my_words(setup):
      prompt = make_discrete_prompt(np.asarray([1, 2, 3]), setup.config.prompt.length)
      task, blackbox = setup.token_task(prompt)
      return PromptedTask(task, blackbox, prompt.init, project_tree,
                          lambda params: setup.describe_prompt_ids(
                              [int(i) for i in task.prompt_ids(params)]))
    PROMPTS.register("my_words", my_words, tags=("glue",))
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

import jax
import numpy as np

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.discrete import make_discrete_prompt, project_tree

PyTree = Any


class PromptedTask(NamedTuple):
  """What a text or GLUE prompt kind builds: the family's task wired to the prompt.

  Attributes:
    task: the family's task (``TextClassification``, ``MaskedLMClassification``, ...).
    blackbox: the black box the task queries (wrapped with the build options).
    init_prompt: ``key -> params``, the prompt's initial parameters.
    project: applied to the parameters after every step (``None``: nothing).
    describe: ``params -> dict``, the prompt's entries of the run's summary.
  """

  task: Any
  blackbox: BlackBox
  init_prompt: Callable[[jax.Array], PyTree]
  project: Callable[[PyTree], PyTree] | None
  describe: Callable[[PyTree], dict]


class TokenPromptSetup(Protocol):
  """What the text and GLUE families' set-ups offer a prompt of token ids."""

  config: Any

  def candidate_vocabulary(self) -> np.ndarray:
    """``[N]`` candidate token ids from ``config.prompt.vocabulary*`` and the clients' texts."""

  def token_task(self, prompt: PromptGenerator) -> tuple[Any, BlackBox]:
    """The family's task and its token-id black box for ``prompt`` (``apply`` gives ``[P]``
    ids); the task's ``prompt_ids(params)`` reads them back."""

  def describe_prompt_ids(self, ids: list[int]) -> dict:
    """Summary entries for a prompt of these ids (its text, the ids, ...)."""


def discrete_prompt(setup: TokenPromptSetup) -> PromptedTask:
  """BDPL's categorical prompt of ``config.prompt.length`` positions over the candidates."""
  vocabulary = setup.candidate_vocabulary()
  prompt = make_discrete_prompt(vocabulary, setup.config.prompt.length)
  task, blackbox = setup.token_task(prompt)

  def describe(params: PyTree) -> dict:
    ids = [int(i) for i in np.asarray(task.prompt_ids(params))]
    return {**setup.describe_prompt_ids(ids), "candidate_vocabulary_size": int(len(vocabulary))}

  return PromptedTask(task, blackbox, prompt.init, project_tree, describe)
