"""Scoring an instruction: the black-box LLM answers task inputs under it (InstructZero's
execution accuracy; docs/algorithms.md, "InstructZero").

Each example becomes one chat request::

    Instruction: <instruction>

    Input: <x>
    Output:

(with optional few-shot demonstrations before the input), answered at temperature 0;
the answer is scored against the expected output (``scorers``). The score of an
instruction is the mean over the examples, with the per-example vector kept (the
instruction-coupled kernel of the BO baseline uses it). Scores are cached by
instruction text; a degenerate instruction scores 0 on every example without a query.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from fedbbpt_jax.blackbox.llm_local import ChatLLM
from fedbbpt_jax.tasks.instruction.scorers import SCORERS, degenerate


def execution_messages(instruction: str, x: str,
                       demos: Sequence[tuple[str, str]] = ()) -> list[dict]:
  shots = "".join(f"Input: {dx}\nOutput: {dy}\n\n" for dx, dy in demos)
  return [{"role": "user", "content": f"Instruction: {instruction}\n\n{shots}Input: {x}\nOutput:"}]


@dataclasses.dataclass(frozen=True)
class InstructionScore:
  """An instruction's mean score, per-example scores, and why it was not asked (if so)."""

  mean: float
  per_example: np.ndarray
  degenerate: str | None = None


class InstructionScorer:
  """Scores instructions on fixed examples with a black-box LLM (cached by text).

  Args:
    llm: the black-box LLM (``ChatLLM``: local, or any OpenAI-compatible endpoint).
    examples: ``(input, expected output)`` pairs scored for every instruction.
    scorer: a name in ``SCORERS``.
    exemplars: the generator's demonstrations (for the degeneracy check).
    demos: few-shot demonstrations in each execution request.
    max_tokens: answer length limit.
  """

  def __init__(self, llm: ChatLLM, examples: Sequence[tuple[str, str]], scorer: str,
               exemplars: Sequence[tuple[str, str]] = (), demos: Sequence[tuple[str, str]] = (),
               max_tokens: int = 16):
    if scorer not in SCORERS:
      raise KeyError(f"no scorer {scorer!r}; there are {sorted(SCORERS)}")
    if not examples:
      raise ValueError("an instruction is scored on at least one example")
    self.llm, self.examples, self.score_fn = llm, tuple(examples), SCORERS[scorer]
    self.exemplars, self.demos, self.max_tokens = tuple(exemplars), tuple(demos), max_tokens
    self.cache: dict[str, InstructionScore] = {}
    self.queries = 0

  def score(self, instructions: Sequence[str]) -> list[InstructionScore]:
    """Scores every instruction (new, non-degenerate ones in one batch of requests)."""
    todo = []
    for text in dict.fromkeys(instructions):
      if text in self.cache:
        continue
      why = degenerate(text, self.exemplars)
      if why is not None:
        self.cache[text] = InstructionScore(0.0, np.zeros(len(self.examples)), why)
      else:
        todo.append(text)
    if todo:
      conversations = [execution_messages(t, x, self.demos) for t in todo
                       for x, _ in self.examples]
      answers = self.llm.complete(conversations, self.max_tokens)
      self.queries += len(conversations)
      for j, text in enumerate(todo):
        got = answers[j * len(self.examples):(j + 1) * len(self.examples)]
        per = np.asarray([self.score_fn(a.text, y) for a, (_, y) in zip(got, self.examples)])
        self.cache[text] = InstructionScore(float(per.mean()), per)
    return [self.cache[t] for t in instructions]
