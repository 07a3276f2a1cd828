"""Instruction-induction tasks: rule-defined ones generated offline with their true
definitions, and the instruction-induction JSON format read from local files.

A rule task knows the instruction that solves it (``definition``), so a run can report
how close the found instruction comes. Examples are drawn from a seeded generator:

    first_word_letter   "apple"          -> "a"
    letters_list        "cat"            -> "c a t"
    sum                 "23 41"          -> "64"
    diff                "50 12"          -> "38"
    word_sorting        "pear fig apple" -> "apple fig pear"
    num_to_verbal       "4021"           -> "four thousand twenty-one"
    singular_to_plural  "box"            -> "boxes"

``load_induction_json`` reads ``{"examples": {"1": {"input": ..., "output": ...}, ...}}``
(the instruction-induction data format) from a local path; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable

import numpy as np

NOUNS = ("apple", "box", "city", "dog", "house", "fox", "baby", "key", "bus", "leaf",
         "river", "story", "glass", "church", "tree", "lady", "boat", "watch", "candle",
         "garden", "party", "horse", "brush", "window", "pony", "bench", "flower", "toy",
         "cherry", "wish", "table", "cat", "bird", "dress", "book", "berry", "dish", "pen",
         "lamp", "army")
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


@dataclasses.dataclass(frozen=True)
class InductionTask:
  """A task: its name, the instruction that solves it (None if unknown) and examples."""

  name: str
  definition: str | None
  examples: tuple[tuple[str, str], ...]
  scorer: str = "exact_match"


def plural(noun: str) -> str:
  """English plural by the regular rules (-s, -es after s/x/z/ch/sh, consonant+y -> -ies)."""
  if noun.endswith(("s", "x", "z", "ch", "sh")):
    return noun + "es"
  if noun.endswith("y") and noun[-2] not in "aeiou":
    return noun[:-1] + "ies"
  return noun + "s"


def number_words(n: int) -> str:
  """``n`` in [0, 9999] in English words (``4021`` -> ``four thousand twenty-one``)."""
  if not 0 <= n <= 9999:
    raise ValueError(f"number_words covers 0..9999, got {n}")
  if n < 20:
    return ONES[n]
  if n < 100:
    return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
  if n < 1000:
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
  rest = n % 1000
  return ONES[n // 1000] + " thousand" + ("" if rest == 0 else " " + number_words(rest))


def _nouns(rng: np.random.Generator, k: int) -> list[str]:
  return [NOUNS[i] for i in rng.choice(len(NOUNS), size=k, replace=False)]


RULES: dict[str, tuple[str, Callable[[np.random.Generator], tuple[str, str]]]] = {
    "first_word_letter": ("Write the first letter of the word.",
                          lambda rng: (w := _nouns(rng, 1)[0], w[0])),
    "letters_list": ("Write the letters of the word separated by spaces.",
                     lambda rng: (w := _nouns(rng, 1)[0], " ".join(w))),
    "sum": ("Add the two numbers.",
            lambda rng: (f"{(a := int(rng.integers(0, 100)))} {(b := int(rng.integers(0, 100)))}",
                         str(a + b))),
    "diff": ("Subtract the second number from the first.",
             lambda rng: (f"{(a := int(rng.integers(50, 100)))} {(b := int(rng.integers(0, 50)))}",
                          str(a - b))),
    "word_sorting": ("Sort the words in alphabetical order.",
                     lambda rng: (" ".join(ws := _nouns(rng, 4)), " ".join(sorted(ws)))),
    "num_to_verbal": ("Write the number in English words.",
                      lambda rng: (str(n := int(rng.integers(0, 10000))), number_words(n))),
    "singular_to_plural": ("Write the plural form of the word.",
                           lambda rng: (w := _nouns(rng, 1)[0], plural(w))),
}


def rule_task(name: str, num_examples: int, seed: int = 0) -> InductionTask:
  """``num_examples`` examples of the rule task ``name`` drawn with ``seed``.

  Raises:
    KeyError: naming the rule tasks there are.
  """
  if name not in RULES:
    raise KeyError(f"no rule task {name!r}; there are {sorted(RULES)}")
  definition, draw = RULES[name]
  rng = np.random.default_rng(seed)
  return InductionTask(name, definition, tuple(draw(rng) for _ in range(num_examples)))


def load_induction_json(path: str, name: str | None = None,
                        scorer: str = "exact_match") -> InductionTask:
  """A task from an instruction-induction JSON file (``examples`` keyed by index).

  Raises:
    ValueError: naming the file and what is malformed.
  """
  with open(path) as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}") from None
  examples = data.get("examples") if isinstance(data, dict) else None
  if not isinstance(examples, dict) or not examples:
    raise ValueError(f"{path}: expected {{'examples': {{'1': {{'input': ..., 'output': ...}}}}}}")
  pairs = []
  for key in sorted(examples, key=lambda k: int(k) if str(k).isdigit() else str(k)):
    ex = examples[key]
    if not isinstance(ex, dict) or "input" not in ex or "output" not in ex:
      raise ValueError(f"{path}: example {key!r} lacks 'input' or 'output'")
    output = ex["output"][0] if isinstance(ex["output"], list) else ex["output"]
    pairs.append((str(ex["input"]), str(output)))
  return InductionTask(name or path.rsplit("/", 1)[-1].removesuffix(".json"),
                       data.get("definition"), tuple(pairs), scorer)
