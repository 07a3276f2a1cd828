"""Candidate vocabularies of the discrete prompt, from training-text statistics.

``pmi_ngrams`` follows BDPL's ``pmi_ngram.py`` (docs/algorithms.md, "BDPL"): count words and
adjacent pairs; a pair is a strong link when its count is at least ``min_count``
and ``PMI = log(total * c(w1 w2) / (c(w1) c(w2))) >= pmi_threshold``; sentences
are cut at weak links into n-grams of at most ``max_n`` words; n-grams seen more
than ``min_count`` times are kept, most frequent first. ``flatten_to_token_ids``
then does what BDPL's RoBERTa script does: tokenises every n-gram, concatenates
the ids in order, de-duplicates, and keeps the first ``size`` ids, so multi-word
n-grams become single tokens.

``frequent_words`` is the simpler alternative (most frequent training words).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

VOCABULARIES = ("frequent_words", "pmi_ngram")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
  """Lower-cased word and punctuation tokens of ``text``."""
  return _WORD.findall(text.lower())


def pmi_ngrams(texts: Iterable[str], *, min_count: int = 5, pmi_threshold: float = 1.0,
               max_n: int = 5) -> list[tuple[str, int]]:
  """Returns ``[(ngram, count)]`` kept by the PMI segmentation, most frequent first."""
  sentences = [words(s) for t in texts for s in _SENTENCE.split(t)]
  sentences = [s for s in sentences if s]
  unigrams = Counter(w for s in sentences for w in s)
  bigrams = Counter(p for s in sentences for p in zip(s, s[1:]))
  total = sum(unigrams.values())

  def strong(a: str, b: str) -> bool:
    c = bigrams[(a, b)]
    return c >= min_count and math.log(total * c / (unigrams[a] * unigrams[b])) >= pmi_threshold

  ngrams: Counter = Counter()
  for s in sentences:
    segment = [s[0]]
    for a, b in zip(s, s[1:]):
      if strong(a, b) and len(segment) < max_n:
        segment.append(b)
      else:
        ngrams[" ".join(segment)] += 1
        segment = [b]
    ngrams[" ".join(segment)] += 1
  kept = [(g, c) for g, c in ngrams.items() if c > min_count]
  return sorted(kept, key=lambda gc: (-gc[1], gc[0]))


def frequent_words(texts: Iterable[str], *, alphabetic_only: bool = True) -> list[tuple[str, int]]:
  """Returns ``[(word, count)]`` over ``texts``, most frequent first."""
  counts = Counter(w for t in texts for w in words(t) if not alphabetic_only or w.isalpha())
  return sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))


def flatten_to_token_ids(phrases: Sequence[str], tokenize: Callable[[str], list[int]], size: int,
                         exclude: Iterable[int] = ()) -> np.ndarray:
  """Tokenises ``phrases`` in order and keeps the first ``size`` distinct ids.

  Raises:
    ValueError: if fewer than ``size`` distinct ids exist.
  """
  excluded = set(int(i) for i in exclude)
  seen: dict[int, None] = {}
  for phrase in phrases:
    for token_id in tokenize(phrase):
      if token_id not in excluded and token_id not in seen:
        seen[token_id] = None
        if len(seen) == size:
          return np.asarray(list(seen), np.int32)
  raise ValueError(f"only {len(seen)} distinct candidate tokens exist, {size} requested "
                   "(config field prompt.vocabulary_size)")


def candidate_vocabulary(kind: str, texts: Sequence[str], tokenize: Callable[[str], list[int]],
                         size: int, exclude: Iterable[int] = ()) -> np.ndarray:
  """Returns ``size`` candidate token ids of vocabulary ``kind`` (one of ``VOCABULARIES``)."""
  if kind == "pmi_ngram":
    phrases = [g for g, _ in pmi_ngrams(texts)]
  elif kind == "frequent_words":
    phrases = [w for w, _ in frequent_words(texts)]
  else:
    raise ValueError(f"unknown candidate vocabulary {kind!r}; choose one of {list(VOCABULARIES)}")
  return flatten_to_token_ids(phrases, tokenize, size, exclude)
