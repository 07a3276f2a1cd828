"""Candidate vocabularies of the discrete prompt, from training-text counts.

``pmi_ngrams`` follows BDPL's ``pmi_ngram.py`` (docs/algorithms.md, "BDPL"): count words and
adjacent pairs; a pair is a strong link when its count is at least ``min_count``
and ``PMI = log(total * c(w1 w2) / (c(w1) c(w2))) >= pmi_threshold``; sentences
are cut at weak links into n-grams of at most ``max_n`` words; n-grams seen more
than ``min_count`` times are kept, most frequent first. ``flatten_to_token_ids``
then does what BDPL's RoBERTa script does: tokenises every n-gram, concatenates
the ids in order, de-duplicates, and keeps the first ``size`` ids, so multi-word
n-grams become single tokens.

``frequent_words`` is the simpler alternative (most frequent training words).

Every step is a count, so the pooled functions here are sums of per-text counts:
``word_counts``, ``pair_counts`` (unigrams, adjacent pairs, total) and ``ngram_counts``
(the segmentation at ``strong_pairs``) each count one set of texts, and the selection
(``strong_pairs``, ``ranked``, ``phrases_from_counts``) works on counts alone. The text
family sums them over clients that each count their own texts
(``tasks/text/setup_statistics.py``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

VOCABULARIES = ("frequent_words", "pmi_ngram")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
PMI_MIN_COUNT, PMI_THRESHOLD, PMI_MAX_N = 5, 1.0, 5  # BDPL's defaults


def words(text: str) -> list[str]:
  """Lower-cased word and punctuation tokens of ``text``."""
  return _WORD.findall(text.lower())


def sentences(texts: Iterable[str]) -> list[list[str]]:
  """The non-empty sentences of ``texts`` as word lists (PMI's unit)."""
  split = [words(s) for t in texts for s in _SENTENCE.split(t)]
  return [s for s in split if s]


def pair_counts(texts: Iterable[str]) -> tuple[Counter, Counter, int]:
  """``(unigram counts, adjacent-pair counts, total words)`` of ``texts``' sentences."""
  split = sentences(texts)
  unigrams = Counter(w for s in split for w in s)
  bigrams = Counter(p for s in split for p in zip(s, s[1:]))
  return unigrams, bigrams, sum(unigrams.values())


def strong_pairs(unigrams: Mapping[str, int], bigrams: Mapping[tuple[str, str], int], total: int,
                 *, min_count: int = PMI_MIN_COUNT,
                 pmi_threshold: float = PMI_THRESHOLD) -> set[tuple[str, str]]:
  """The pairs counted at least ``min_count`` times whose PMI is at least ``pmi_threshold``."""
  return {(a, b) for (a, b), c in bigrams.items()
          if c >= min_count and math.log(total * c / (unigrams[a] * unigrams[b])) >= pmi_threshold}


def ngram_counts(texts: Iterable[str], strong: set[tuple[str, str]],
                 max_n: int = PMI_MAX_N) -> Counter:
  """Counts of the n-grams (at most ``max_n`` words) that cutting ``texts``' sentences at
  every pair not in ``strong`` gives."""
  ngrams: Counter = Counter()
  for s in sentences(texts):
    segment = [s[0]]
    for a, b in zip(s, s[1:]):
      if (a, b) in strong and len(segment) < max_n:
        segment.append(b)
      else:
        ngrams[" ".join(segment)] += 1
        segment = [b]
    ngrams[" ".join(segment)] += 1
  return ngrams


def ranked(counts: Mapping[str, int], above: int = 0) -> list[tuple[str, int]]:
  """``[(phrase, count)]`` of the counts above ``above``, most frequent first (ties by text)."""
  return sorted(((g, c) for g, c in counts.items() if c > above), key=lambda gc: (-gc[1], gc[0]))


def pmi_ngrams(texts: Sequence[str], *, min_count: int = PMI_MIN_COUNT,
               pmi_threshold: float = PMI_THRESHOLD,
               max_n: int = PMI_MAX_N) -> list[tuple[str, int]]:
  """Returns ``[(ngram, count)]`` kept by the PMI segmentation, most frequent first."""
  unigrams, bigrams, total = pair_counts(texts)
  strong = strong_pairs(unigrams, bigrams, total, min_count=min_count,
                        pmi_threshold=pmi_threshold)
  return ranked(ngram_counts(texts, strong, max_n), above=min_count)


def word_counts(texts: Iterable[str], *, alphabetic_only: bool = True) -> Counter:
  """Counts of the words of ``texts`` (letters only when ``alphabetic_only``)."""
  return Counter(w for t in texts for w in words(t) if not alphabetic_only or w.isalpha())


def frequent_words(texts: Iterable[str], *, alphabetic_only: bool = True) -> list[tuple[str, int]]:
  """Returns ``[(word, count)]`` over ``texts``, most frequent first."""
  return ranked(word_counts(texts, alphabetic_only=alphabetic_only))


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


def check_kind(kind: str) -> None:
  """Raises ``ValueError`` unless ``kind`` is one of ``VOCABULARIES``."""
  if kind not in VOCABULARIES:
    raise ValueError(f"unknown candidate vocabulary {kind!r}; choose one of {list(VOCABULARIES)}")


def candidate_vocabulary(kind: str, texts: Sequence[str], tokenize: Callable[[str], list[int]],
                         size: int, exclude: Iterable[int] = ()) -> np.ndarray:
  """Returns ``size`` candidate token ids of vocabulary ``kind`` (one of ``VOCABULARIES``)."""
  check_kind(kind)
  if kind == "pmi_ngram":
    phrases = [g for g, _ in pmi_ngrams(texts)]
  else:
    phrases = [w for w, _ in frequent_words(texts)]
  return flatten_to_token_ids(phrases, tokenize, size, exclude)
