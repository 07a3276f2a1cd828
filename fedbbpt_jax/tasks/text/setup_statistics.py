"""The text family's set-up statistics (``tasks/local_setup.py``): the counts behind the
candidate vocabulary of the discrete prompt, each client counting its own training texts.

* ``word_counts``: the client's alphabetic words and their counts (``frequent_words``);
* ``pair_counts``: its word and adjacent-pair counts and its total word count (PMI's
  strong links, ``pmi_ngram``);
* ``ngram_counts`` (request: the strong pairs the server found): the counts of the
  n-grams its sentences split into at every other pair (``pmi_ngram``).

Only entries counted at least ``prompt.vocabulary_min_count`` times leave a client, so
a word (pair, n-gram) it holds fewer times is never revealed; ``total`` is a bare
number. The server sums the clients' counts and selects exactly as the pooled
``prompts/vocabulary.py`` does from its own counts (``gathered_vocabulary``): with a
minimum count of 1 the candidates are the pooled ones. Strings travel UTF-8 encoded
(``local_setup.encode_strings``). No statistic queries the black box.

The statistics read the client's raw texts, which ``ClientData`` does not hold, so each
set is bound to one client's texts (``vocabulary_statistics``).
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, MutableMapping, Sequence

import numpy as np

from fedbbpt_jax.data import ClientData
from fedbbpt_jax.prompts.vocabulary import (PMI_MIN_COUNT, check_kind, ngram_counts, pair_counts,
                                            ranked, strong_pairs, word_counts)
from fedbbpt_jax.tasks.local_setup import (Gather, Request, Statistic, Stats, decode_strings,
                                           encode_strings)

WORD_COUNTS, PAIR_COUNTS, NGRAM_COUNTS = "word_counts", "pair_counts", "ngram_counts"


def frequent_entries(counts: Mapping[str, int], min_count: int) -> tuple[np.ndarray, np.ndarray]:
  """``(encoded strings, int64 counts)`` of the entries counted at least ``min_count``
  times, in sorted order (what leaves a client)."""
  kept = sorted(k for k, c in counts.items() if c >= min_count)
  return encode_strings(kept), np.asarray([counts[k] for k in kept], np.int64)


def summed_counts(stats: Sequence[Stats], strings: str, counts: str) -> Counter:
  """The clients' entries ``strings``/``counts`` added up by string."""
  total: Counter = Counter()
  for s in stats:
    for key, c in zip(decode_strings(s[strings]), np.asarray(s[counts]).tolist()):
      total[key] += int(c)
  return total


def pair_text(pair: tuple[str, str]) -> str:
  """An adjacent pair as one string (words never hold a space)."""
  return " ".join(pair)


def text_pair(text: str) -> tuple[str, str]:
  a, b = text.split(" ")
  return a, b


def vocabulary_statistics(texts: Sequence[str], min_count: int) -> dict[str, Statistic]:
  """The vocabulary statistics of the client whose training texts are ``texts``."""
  texts = list(texts)

  def words_statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    del client, request, store
    names, counts = frequent_entries(word_counts(texts), min_count)
    return {"words": names, "counts": counts}

  def pairs_statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    del client, request, store
    unigrams, bigrams, total = pair_counts(texts)
    names, counts = frequent_entries(unigrams, min_count)
    pairs, pair_count = frequent_entries({pair_text(p): c for p, c in bigrams.items()}, min_count)
    return {"words": names, "word_counts": counts, "pairs": pairs, "pair_counts": pair_count,
            "total": np.asarray(total, np.int64)}

  def ngrams_statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    del client, store
    strong = {text_pair(t) for t in decode_strings(request["strong"])}
    names, counts = frequent_entries(ngram_counts(texts, strong), min_count)
    return {"ngrams": names, "counts": counts}

  return {WORD_COUNTS: words_statistic, PAIR_COUNTS: pairs_statistic,
          NGRAM_COUNTS: ngrams_statistic}


def gathered_phrases(kind: str, gather: Gather) -> list[str]:
  """The phrases of vocabulary ``kind`` in candidate order, from the clients' summed counts:
  ``frequent_words`` (one request) or ``pmi_ngram`` (pair counts, then the n-gram counts
  of the strong pairs found)."""
  check_kind(kind)
  if kind == "frequent_words":
    return [w for w, _ in ranked(summed_counts(gather(WORD_COUNTS, {}), "words", "counts"))]
  stats = gather(PAIR_COUNTS, {})
  unigrams = summed_counts(stats, "words", "word_counts")
  bigrams = {text_pair(p): c for p, c in summed_counts(stats, "pairs", "pair_counts").items()}
  strong = strong_pairs(unigrams, bigrams, sum(int(s["total"]) for s in stats))
  ngrams = gather(NGRAM_COUNTS, {"strong": encode_strings(sorted(pair_text(p) for p in strong))})
  return [g for g, _ in ranked(summed_counts(ngrams, "ngrams", "counts"), above=PMI_MIN_COUNT)]
