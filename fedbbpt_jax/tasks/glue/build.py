"""Builds the GLUE family's ``TaskBundle``: BDPL over a RoBERTa masked LM.

Data flow (docs/algorithms.md, "BDPL" and "FedOne"): GLUE from a local TFDS folder -> BDPL's
k-shot protocol with FedOne's ``k * num_clients`` (train split halved, train
and dev drawn per class from the halves) -> client partition -> host
tokenisation of every row once as ``<s> [prompt slot] template(texts) </s>`` ->
packed clients. The black box is the frozen masked LM from
``config.blackbox.model_dir`` returning the verbalizer logits at ``<mask>``; the
prompt is BDPL's categorical discrete prompt over candidate tokens of the
clients' texts (PMI n-grams or frequent words, flattened to RoBERTa BPE ids).

Dev forwards are not counted as queries (as in BDPL and FedOne); the summary
reports the final prompt's dev accuracy and task metric.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import ml_collections
import numpy as np

from fedbbpt_jax.blackbox.text_zoo import make_masked_lm_blackbox, make_masked_lm_tokenizer
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import DATASETS, client_data, label_histograms, test_subset_indices
from fedbbpt_jax.data.few_shot import FewShotError, k_shot_clients
from fedbbpt_jax.data.glue import GlueDataError, GlueTask
from fedbbpt_jax.data.registry import glue_test_split
from fedbbpt_jax.models.roberta import RobertaTokenizer
from fedbbpt_jax.prompts import make_discrete_prompt, project_tree
from fedbbpt_jax.prompts.vocabulary import flatten_to_token_ids, frequent_words, pmi_ngrams
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.tasks.glue.config_check import check_glue_paths
from fedbbpt_jax.tasks.glue.masked_lm_classification import MaskedLMClassification
from fedbbpt_jax.tasks.glue.metrics import task_metric
from fedbbpt_jax.tasks.protocol import BuildOptions, TaskBundle


def _decoder(model_dir: str):
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  return Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))


def example_sentences(texts: list[tuple[str, ...]]) -> list[str]:
  """Every sentence of every example (pair tasks contribute both texts)."""
  return [t for example in texts for t in example]


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


def encode_rows(tokenizer: RobertaTokenizer, task: GlueTask, texts: list[tuple[str, ...]],
                prompt_length: int) -> np.ndarray:
  """Host tokenisation: ``<s> [pad x P] template(texts) </s> <pad>...`` int32 ``[N, T]``."""
  if not texts:
    return np.zeros((0, tokenizer.max_length), np.int32)
  try:
    ids, _ = tokenizer.encode_template(task.template, texts, [tokenizer.pad_id] * prompt_length)
  except ValueError as e:
    raise ConfigError(f"config.blackbox.max_length={tokenizer.max_length} with "
                      f"config.prompt.length={prompt_length}: {e}") from e
  return ids


def _mask_id_of_model(model_dir: str) -> int:
  with open(os.path.join(model_dir, "config.json")) as f:
    return int(json.load(f)["vocab_size"]) - 1


def describe_prompt(task: MaskedLMClassification, params: Any, glue_task: GlueTask,
                    decoder: Any, verbalizer_ids: list[int], vocabulary: np.ndarray,
                    train_examples: int, dev: Evaluator, test_line: str) -> dict[str, Any]:
  """Summary entries: the learned prompt, task, metric, split sizes and dev scores."""
  ids = [int(i) for i in np.asarray(task.prompt_ids(params))]
  rep = dev.report(params)
  return {"learned_prompt": decoder.decode(ids), "learned_prompt_ids": ids,
          "learned_prompt_tokens": [decoder.id_to_token(i) for i in ids],
          "glue_task": glue_task.name, "task_metric_name": task.metric,
          "class_names": list(glue_task.label_names),
          "verbalizers": list(glue_task.verbalizers),
          "verbalizer_ids": list(verbalizer_ids),
          "candidate_vocabulary_size": int(len(vocabulary)),
          "train_examples": int(train_examples), "dev_examples": int(dev.num_examples),
          "test_split": test_line,
          "dev_accuracy": rep["accuracy"], "dev_task_metric": rep["task_metric"]}


def build_glue_task(config: ml_collections.ConfigDict, options: BuildOptions) -> TaskBundle:
  """Checks the paths, loads GLUE and the masked LM, builds the k-shot clients and the task."""
  check_glue_paths(config)
  dcfg, pcfg = config.data, config.prompt
  model_dir = os.path.expanduser(config.blackbox.model_dir)
  tfds_dir = os.path.expanduser(dcfg.tfds_dir)
  test_split = glue_test_split(dcfg)
  try:
    glue = DATASETS.get(dcfg.name, "data.name")(dcfg)
  except GlueDataError as e:
    raise ConfigError(f"config.data.tfds_dir={tfds_dir!r}: {e}") from e
  gtask = glue.task
  train_split, test = glue.splits["train"], glue.splits[test_split]
  num_classes = len(gtask.label_names)
  try:
    few = k_shot_clients(train_split.labels, dcfg.k_shot, dcfg.num_clients, dcfg.k_shot_seed,
                         dcfg.partition, alpha=dcfg.dirichlet_alpha,
                         shards_per_client=dcfg.shards_per_client, num_classes=num_classes,
                         partition_seed=dcfg.partition_seed)
  except FewShotError as e:
    raise ConfigError(f"config.data.k_shot={dcfg.k_shot} x config.data.num_clients="
                      f"{dcfg.num_clients}: {e}") from e

  tokenizer = make_masked_lm_tokenizer(model_dir, config.blackbox.max_length)
  if tokenizer.mask_id != _mask_id_of_model(model_dir):
    raise ConfigError(f"config.blackbox.model_dir={model_dir!r}: tokenizer.json's <mask> id "
                      f"{tokenizer.mask_id} is not the model's last id "
                      f"{_mask_id_of_model(model_dir)} (vocab_size - 1)")
  decoder = _decoder(model_dir)
  verbalizer_ids = tokenizer.verbalizer_ids(gtask.verbalizers)
  p = pcfg.length
  train_x = encode_rows(tokenizer, gtask, [train_split.texts[i] for i in few.train], p)
  train_y = train_split.labels[few.train]
  dev_x = encode_rows(tokenizer, gtask, [train_split.texts[i] for i in few.dev], p)
  dev_y = train_split.labels[few.dev]
  keep = test_subset_indices(len(test.labels), dcfg.test_examples,
                             candidates=np.flatnonzero(test.labels >= 0))
  test_x = encode_rows(tokenizer, gtask, [test.texts[i] for i in keep], p)
  test_y = test.labels[keep]

  # Client parts index the whole train split; the packed rows follow ``few.train``.
  position = {int(i): j for j, i in enumerate(few.train)}
  parts = [np.asarray([position[int(i)] for i in part], np.int64) for part in few.parts]
  clients = options.clients(client_data(train_x, train_y, parts), num_classes)

  vocab_texts = (example_sentences([train_split.texts[i] for i in few.train])
                 if pcfg.vocabulary_texts == "clients" else example_sentences(train_split.texts))
  unk = decoder.token_to_id("<unk>")
  specials = tuple(i for i in (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id,
                               tokenizer.mask_id, unk) if i is not None)
  try:
    vocabulary = glue_vocabulary(pcfg.vocabulary, vocab_texts, tokenizer, pcfg.vocabulary_size,
                                 pcfg.vocabulary_fill, specials)
  except ValueError as e:
    raise ConfigError(f"config.prompt.vocabulary_size={pcfg.vocabulary_size} "
                      f"(config.prompt.vocabulary={pcfg.vocabulary!r} from "
                      f"config.prompt.vocabulary_texts={pcfg.vocabulary_texts!r}): {e}") from e

  blackbox = options.wrap(make_masked_lm_blackbox(model_dir, config.blackbox.max_length,
                                                  verbalizer_ids))
  prompt = make_discrete_prompt(vocabulary, p)
  task = MaskedLMClassification(blackbox=blackbox, prompt=prompt, prompt_length=p,
                                pad_id=tokenizer.pad_id, metric=gtask.metric)
  metric = (gtask.metric, functools.partial(task_metric, gtask.metric))
  dev = Evaluator(task, dev_x, dev_y, config.train.eval_batch_size, metric)
  test_line = f"glue/{gtask.name} {test_split} (GLUE dev set), {len(test_y)} examples"
  return TaskBundle(task=task, blackbox=blackbox, clients=clients, test_x=test_x,
                    test_y=test_y, init_prompt=prompt.init,
                    label_histograms=label_histograms(train_y, parts, num_classes),
                    test_split=test_line, project=project_tree, task_metric=metric,
                    describe=lambda params: describe_prompt(
                        task, params, gtask, decoder, verbalizer_ids, vocabulary,
                        len(train_y), dev, test_line))
