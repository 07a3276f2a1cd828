"""How an answer is scored against the expected output (instruction-induction metrics).

Both strings are normalised first: lower case, punctuation removed (hyphens inside
words kept: ``twenty-one``), articles ``a/an/the`` dropped, whitespace collapsed.

* ``exact_match``: 1 if the normalised strings are equal;
* ``contains``: 1 if the normalised expected output occurs in the answer as whole words;
* ``f1``: token-level F1 of the normalised strings (SQuAD style).
"""

from __future__ import annotations

import collections
import re
import string
from typing import Callable

_PUNCT = set(string.punctuation) - {"-"}


def normalise(text: str) -> str:
  text = "".join(" " if c in _PUNCT else c for c in text.lower())
  text = re.sub(r"(?<!\w)-|-(?!\w)", " ", text)  # a hyphen that does not join two words
  return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def exact_match(answer: str, expected: str) -> float:
  return float(normalise(answer) == normalise(expected))


def contains(answer: str, expected: str) -> float:
  want = normalise(expected)
  return float(bool(want) and f" {want} " in f" {normalise(answer)} ")


def f1(answer: str, expected: str) -> float:
  got, want = normalise(answer).split(), normalise(expected).split()
  if not got or not want:
    return float(got == want)
  common = sum((collections.Counter(got) & collections.Counter(want)).values())
  if not common:
    return 0.0
  precision, recall = common / len(got), common / len(want)
  return 2 * precision * recall / (precision + recall)


SCORERS: dict[str, Callable[[str, str], float]] = {"exact_match": exact_match,
                                                   "contains": contains, "f1": f1}
