"""How an answer is scored against the expected output (instruction-induction metrics).

Both strings are normalised first: lower case, punctuation removed (hyphens inside
words kept: ``twenty-one``), articles ``a/an/the`` dropped, whitespace collapsed. An
expected output that is itself only articles (``"a"``, the first letter of ``"apple"``)
is compared with articles kept, on both sides.

* ``exact_match``: 1 if the normalised strings are equal;
* ``contains``: 1 if the normalised expected output occurs in the answer as whole words;
* ``f1``: token-level F1 of the normalised strings (SQuAD style).

``degenerate(instruction, exemplars)`` names why an instruction is unusable (empty, a
template marker, a copy of an exemplar's input or output); such instructions are scored
worst without querying.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Callable, Sequence

_PUNCT = set(string.punctuation) - {"-"}


def normalise(text: str, drop_articles: bool = True) -> str:
  text = "".join(" " if c in _PUNCT else c for c in text.lower())
  text = re.sub(r"(?<!\w)-|-(?!\w)", " ", text)  # a hyphen that does not join two words
  return " ".join(w for w in text.split() if not drop_articles or w not in ("a", "an", "the"))


def _pair(answer: str, expected: str) -> tuple[str, str]:
  """Both normalised; articles kept when the expected output is nothing but articles."""
  keep = not normalise(expected) and bool(normalise(expected, drop_articles=False))
  return normalise(answer, not keep), normalise(expected, not keep)


def exact_match(answer: str, expected: str) -> float:
  got, want = _pair(answer, expected)
  return float(got == want)


def contains(answer: str, expected: str) -> float:
  got, want = _pair(answer, expected)
  return float(bool(want) and f" {want} " in f" {got} ")


def f1(answer: str, expected: str) -> float:
  got, want = (t.split() for t in _pair(answer, expected))
  if not got or not want:
    return float(got == want)
  common = sum((collections.Counter(got) & collections.Counter(want)).values())
  if not common:
    return 0.0
  precision, recall = common / len(got), common / len(want)
  return 2 * precision * recall / (precision + recall)


def degenerate(instruction: str, exemplars: Sequence[tuple[str, str]]) -> str | None:
  """Why ``instruction`` is unusable, or None."""
  text = normalise(instruction)
  if not text:
    return "empty"
  if "input:" in instruction.lower() or "output:" in instruction.lower():
    return "contains the exemplar template (Input:/Output:)"
  for x, y in exemplars:
    if text in (normalise(x), normalise(y)):
      return "copies an exemplar"
  return None


SCORERS: dict[str, Callable[[str, str], float]] = {"exact_match": exact_match,
                                                   "contains": contains, "f1": f1}
