"""What a GLUE prompt kind starts from (``GlueSetup``, a ``prompts.TokenPromptSetup``).

A GLUE prompt kind is a ``prompts.PROMPTS`` entry with tag ``'glue'``,
``build(setup: GlueSetup) -> prompts.PromptedTask``; ``discrete`` (BDPL's categorical
prompt, shared with the text family) is the one registered. Every kind fills the ``P``
reserved positions after ``<s>`` with token ids, so it asks the set-up for the family's
task (``token_task``: a ``MaskedLMClassification`` on the frozen RoBERTa masked LM);
the candidate vocabulary is BDPL's (PMI n-grams or frequent words of the clients' texts,
flattened to whole-word RoBERTa BPE ids).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.blackbox.text_zoo import make_masked_lm_blackbox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.models.roberta import RobertaTokenizer
from fedbbpt_jax.prompts import PromptGenerator
from fedbbpt_jax.prompts.vocabulary import flatten_to_token_ids, frequent_words, pmi_ngrams
from fedbbpt_jax.tasks.glue.masked_lm_classification import MaskedLMClassification
from fedbbpt_jax.tasks.protocol import BuildOptions


def whole_word_ids(tokenizer: RobertaTokenizer, phrase: str) -> list[int]:
  """BPE ids of the words of ``phrase`` that are one token with a leading space.

  Each word is looked up as ``" " + word`` (as it appears inside a sentence:
  ``Ġthe``, ``Ġfilm``); a word that BPE splits into several pieces is skipped, so
  every candidate is a real single token of the vocabulary, never a bare
  fragment (``Ġ``, ``able``). BDPL's flattening of its n-grams into token ids keeps such
  fragments; dropping them is a choice.
  """
  out = []
  for word in phrase.split():
    ids = tokenizer.pieces(" " + word)
    if len(ids) == 1:
      out.append(ids[0])
  return out


def glue_vocabulary(kind: str, texts: list[str], tokenizer: RobertaTokenizer, size: int,
                    fill: bool, exclude: tuple[int, ...]) -> np.ndarray:
  """``size`` candidate ids: PMI n-grams (topped up with frequent words) or frequent words.

  Phrases are flattened in order (most frequent first) into distinct whole-word
  BPE ids (``whole_word_ids``), as BDPL flattens its PMI n-gram file.
  """
  if kind == "pmi_ngram":
    phrases = [g for g, _ in pmi_ngrams(texts)]
    if fill:
      phrases += [w for w, _ in frequent_words(texts, alphabetic_only=False)]
  else:
    phrases = [w for w, _ in frequent_words(texts)]
  return flatten_to_token_ids(phrases, lambda p: whole_word_ids(tokenizer, p), size, exclude)


@dataclasses.dataclass(frozen=True)
class GlueSetup:
  """The GLUE family's set-up for its prompt kinds.

  Attributes:
    config: the experiment config.
    options: build options (black-box wrapper).
    tokenizer: RoBERTa BPE tokenizer padding to ``blackbox.max_length``.
    decoder: the model folder's ``tokenizer.json`` (ids -> text and tokens).
    vocabulary_texts: the sentences the candidate vocabulary is drawn from
      (``prompt.vocabulary_texts``: the clients' k-shot texts or the whole train split).
    special_ids: ids never offered as candidates (``<s>``, ``</s>``, pad, mask, unk).
    verbalizer_ids: one token id per class, read at ``<mask>``.
    metric: the GLUE task's test metric name.
  """

  config: Any
  options: BuildOptions
  tokenizer: RobertaTokenizer
  decoder: Any
  vocabulary_texts: list[str]
  special_ids: tuple[int, ...]
  verbalizer_ids: list[int]
  metric: str

  def candidate_vocabulary(self) -> np.ndarray:
    """BDPL's candidates (``glue_vocabulary``); too few of them is a ``ConfigError``."""
    pcfg = self.config.prompt
    try:
      return glue_vocabulary(pcfg.vocabulary, self.vocabulary_texts, self.tokenizer,
                             pcfg.vocabulary_size, pcfg.vocabulary_fill, self.special_ids)
    except ValueError as e:
      raise ConfigError(f"config.prompt.vocabulary_size={pcfg.vocabulary_size} "
                        f"(config.prompt.vocabulary={pcfg.vocabulary!r} from "
                        f"config.prompt.vocabulary_texts={pcfg.vocabulary_texts!r}): {e}") from e

  def token_task(self, prompt: PromptGenerator) -> tuple[MaskedLMClassification, BlackBox]:
    """The masked LM of ``blackbox.model_dir`` (verbalizer logits at ``<mask>``) and the
    task that writes ``prompt``'s ids into every row's slot."""
    bcfg = self.config.blackbox
    blackbox = self.options.wrap(make_masked_lm_blackbox(os.path.expanduser(bcfg.model_dir),
                                                         bcfg.max_length, self.verbalizer_ids))
    task = MaskedLMClassification(blackbox=blackbox, prompt=prompt,
                                  prompt_length=self.config.prompt.length,
                                  pad_id=self.tokenizer.pad_id, metric=self.metric)
    return task, blackbox

  def describe_prompt_ids(self, ids: list[int]) -> dict:
    """The prompt decoded as text, its ids and its BPE tokens."""
    return {"learned_prompt": self.decoder.decode(ids), "learned_prompt_ids": ids,
            "learned_prompt_tokens": [self.decoder.id_to_token(i) for i in ids]}
