"""The text family's candidate vocabulary as set-up statistics: what a client sends (never
a word it counts fewer than ``prompt.vocabulary_min_count`` times), and that the summed
counts select exactly the pooled vocabulary (against BDPL's pooled counting, kept here
as it was before the counts were split by client) on the drug reviews."""

import math
import re
from collections import Counter

import jax.numpy as jnp
import numpy as np
import pytest

from configs import drug_minilm
from fedbbpt_jax.blackbox.text_zoo import make_text_tokenizer
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import DATASETS, ClientData, client_parts
from fedbbpt_jax.flower.codec import to_array_record
from fedbbpt_jax.prompts.vocabulary import flatten_to_token_ids
from fedbbpt_jax.tasks.local_setup import decode_strings, encode_strings, local_gather
from fedbbpt_jax.tasks.text.candidate_vocabulary import gathered_vocabulary, special_ids
from fedbbpt_jax.tasks.text.setup_statistics import (NGRAM_COUNTS, PAIR_COUNTS, WORD_COUNTS,
                                                     gathered_phrases, vocabulary_statistics)
from fedbbpt_jax.train import validate_config
from fedbbpt_jax.train.records import check_or_write_config

TEXTS = ["Zebra pills helped. The pills helped a lot!", "the pills worked", "The pills, the pills."]


# BDPL's pooled counting as it was before the counts were split by client (reference).
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+|[^\w\s]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def pooled_pmi_ngrams(texts, min_count=5, pmi_threshold=1.0, max_n=5):
  sentences = [_WORD.findall(s.lower()) for t in texts for s in _SENTENCE.split(t)]
  sentences = [s for s in sentences if s]
  unigrams = Counter(w for s in sentences for w in s)
  bigrams = Counter(p for s in sentences for p in zip(s, s[1:]))
  total = sum(unigrams.values())

  def strong(a, b):
    c = bigrams[(a, b)]
    return c >= min_count and math.log(total * c / (unigrams[a] * unigrams[b])) >= pmi_threshold

  ngrams = Counter()
  for s in sentences:
    segment = [s[0]]
    for a, b in zip(s, s[1:]):
      if strong(a, b) and len(segment) < max_n:
        segment.append(b)
      else:
        ngrams[" ".join(segment)] += 1
        segment = [b]
    ngrams[" ".join(segment)] += 1
  return [g for g, c in sorted(ngrams.items(), key=lambda gc: (-gc[1], gc[0])) if c > min_count]


def pooled_frequent_words(texts):
  counts = Counter(w for t in texts for w in _WORD.findall(t.lower()) if w.isalpha())
  return [w for w, _ in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))]


POOLED = {"pmi_ngram": pooled_pmi_ngrams, "frequent_words": pooled_frequent_words}


def gather_for(client_texts, min_count):
  """``local_gather`` over clients holding ``client_texts`` (their ids do not matter)."""
  clients = ClientData(x=jnp.zeros((len(client_texts), 1)),
                       y=jnp.zeros((len(client_texts), 1), jnp.int32),
                       num_examples=jnp.asarray([len(t) for t in client_texts], jnp.int32))
  return local_gather([vocabulary_statistics(t, min_count) for t in client_texts], clients)


def test_a_client_sends_only_what_it_counts_at_least_min_count_times():
  stats = vocabulary_statistics(TEXTS, 2)
  client = ClientData(x=jnp.zeros((3, 1)), y=jnp.zeros(3, jnp.int32), num_examples=jnp.asarray(3))
  words = stats[WORD_COUNTS](client, {}, {})
  assert dict(zip(decode_strings(words["words"]), words["counts"].tolist())) == {
      "helped": 2, "pills": 5, "the": 4}  # 'zebra', 'a', 'lot', 'worked' (once each) stay
  pairs = stats[PAIR_COUNTS](client, {}, {})
  assert dict(zip(decode_strings(pairs["words"]), pairs["word_counts"].tolist())) == {
      ".": 2, "helped": 2, "pills": 5, "the": 4}
  assert dict(zip(decode_strings(pairs["pairs"]), pairs["pair_counts"].tolist())) == {
      "pills helped": 2, "the pills": 4}
  assert int(pairs["total"]) == 19  # every word counted, as a bare number
  request = {"strong": encode_strings(["the pills", "pills helped", "zebra pills"])}
  ngrams = stats[NGRAM_COUNTS](client, request, {})
  assert dict(zip(decode_strings(ngrams["ngrams"]), ngrams["counts"].tolist())) == {
      ".": 2, "the pills": 3}  # 'zebra pills helped', 'the pills helped' (once each) stay
  sent = b"".join(np.asarray(v).tobytes() for s in (words, pairs, ngrams) for v in s.values())
  assert b"zebra" not in sent and b"worked" not in sent and b"lot" not in sent
  # min count 1: every word leaves
  everything = vocabulary_statistics(TEXTS, 1)[WORD_COUNTS](client, {}, {})
  assert decode_strings(everything["words"]) == ["a", "helped", "lot", "pills", "the", "worked",
                                                 "zebra"]


def test_strings_travel_as_utf8_bytes_and_refuse_what_would_not_decode():
  sent = to_array_record({"some": encode_strings(["naïve", "x y", "."]),
                          "none": encode_strings([])})  # a Flower reply's statistics
  got = {k: sent[k].numpy() for k in sent.keys()}
  assert decode_strings(got["some"]) == ["naïve", "x y", "."]
  assert decode_strings(got["none"]) == [] and got["none"].dtype == np.uint8
  with pytest.raises(ValueError, match="cannot encode 'a\\\\nb'"):
    encode_strings(["a\nb"])


@pytest.fixture(scope="module")
def drug_clients():
  """The smoke config's clients' drug-review training texts, and the MiniLM tokenizer."""
  config = drug_minilm.get_config("smoke")
  ds = DATASETS.get(config.data.name)(config.data)
  parts = client_parts(ds.train_labels, config.data)
  return ([[ds.train_texts[i] for i in p] for p in parts],
          make_text_tokenizer(config.blackbox.model, config.blackbox.max_length))


@pytest.mark.parametrize("kind", ["frequent_words", "pmi_ngram"])
def test_summed_counts_select_exactly_the_pooled_vocabulary_at_min_count_1(drug_clients, kind):
  client_texts, tok = drug_clients
  pooled = POOLED[kind]([t for texts in client_texts for t in texts])
  assert gathered_phrases(kind, gather_for(client_texts, 1)) == pooled
  assert len(pooled) > 300  # a real vocabulary, not a trivial one


@pytest.mark.parametrize("kind, min_count, differ", [
    ("frequent_words", 2, 0), ("frequent_words", 3, 0), ("pmi_ngram", 2, 1)])
def test_what_the_minimum_count_changes_in_the_smoke_vocabulary(drug_clients, kind, min_count,
                                                                differ):
  """The smoke config's 30 candidates against the pooled ones (demo default: 2)."""
  client_texts, tok = drug_clients
  pcfg = drug_minilm.get_config("smoke").prompt
  pcfg.vocabulary, pcfg.vocabulary_min_count = kind, min_count
  pooled = flatten_to_token_ids(POOLED[kind]([t for texts in client_texts for t in texts]),
                                tok.pieces, 30, special_ids(tok))
  ids = gathered_vocabulary(pcfg, tok, gather_for(client_texts, min_count))
  assert len(set(pooled.tolist()) - set(ids.tolist())) == differ
  if not differ:
    np.testing.assert_array_equal(ids, pooled)  # same candidates, same order


def test_too_few_candidates_name_the_fields(drug_clients):
  client_texts, tok = drug_clients
  pcfg = drug_minilm.get_config("smoke").prompt
  pcfg.vocabulary_min_count = 10**6
  with pytest.raises(ConfigError, match=r"config.prompt.vocabulary_size=30 \(config.prompt."
                                        r"vocabulary='frequent_words', config.prompt.vocabulary_"
                                        r"min_count=1000000: .*\): only 0 distinct candidate"):
    gathered_vocabulary(pcfg, tok, gather_for(client_texts, 10**6))


def test_the_minimum_count_is_checked_and_old_runs_resume_with_1(tmp_path):
  config = drug_minilm.get_config("smoke")
  assert config.prompt.vocabulary_min_count == 2
  config.prompt.vocabulary_min_count = 0
  with pytest.raises(ConfigError, match=r"config.prompt.vocabulary_min_count=0 must be >= 1"):
    validate_config(config)
  old = drug_minilm.get_config("smoke")
  del old.prompt["vocabulary_min_count"]  # a run recorded before the field
  check_or_write_config(str(tmp_path), old)
  with pytest.raises(ValueError, match=r"prompt.vocabulary_min_count: None -> 2"):
    check_or_write_config(str(tmp_path), drug_minilm.get_config("smoke"))
  config.prompt.vocabulary_min_count = 1  # what the pooled vocabulary was
  check_or_write_config(str(tmp_path), config)
