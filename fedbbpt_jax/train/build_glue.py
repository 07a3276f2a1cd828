"""Builds a GLUE experiment (``config.task.family == 'glue'``): BDPL over a RoBERTa masked LM.

Data flow (methods.md 4, 7): GLUE from a prepared local TFDS folder -> BDPL's
k-shot protocol with FedOne's ``k * num_clients`` (train split halved, train
and dev drawn per class from the halves) -> client partition -> host
tokenisation of every row once as ``<s> [prompt slot] template(texts) </s>`` ->
packed clients. The black box is the frozen masked LM from
``config.blackbox.model_dir`` returning the verbalizer logits at ``<mask>``; the
prompt is BDPL's categorical discrete prompt over candidate tokens of the
clients' texts (PMI n-grams or frequent words, flattened to RoBERTa BPE ids);
the federated algorithm comes from ``train.algorithms.build_algorithm``.

The returned ``GlueExperiment`` has the fields ``train.loop.run`` uses. Dev
forwards are not counted as queries (as in BDPL and FedOne); the summary
reports the final prompt's dev accuracy and task metric.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedbbpt_jax.blackbox.text_zoo import make_masked_lm_blackbox, make_masked_lm_tokenizer
from fedbbpt_jax.data.few_shot import FewShotError, k_shot_clients
from fedbbpt_jax.data.glue import GLUE_TASKS, GlueDataError, GlueTask, load_glue
from fedbbpt_jax.data.partition import label_histograms, pack_clients
from fedbbpt_jax.federated import (ClientData, make_client_optimizer, make_local_only,
                                   make_local_update)
from fedbbpt_jax.models.roberta import RobertaTokenizer
from fedbbpt_jax.prompts import make_discrete_prompt, project_tree
from fedbbpt_jax.prompts.vocabulary import flatten_to_token_ids, frequent_words, pmi_ngrams
from fedbbpt_jax.tasks.masked_lm_classification import MaskedLMClassification
from fedbbpt_jax.train.algorithms import build_algorithm
from fedbbpt_jax.train.build import TEST_SUBSET_SEED, Experiment
from fedbbpt_jax.train.config_check import ConfigError
from fedbbpt_jax.train.config_check_glue import check_glue_paths
from fedbbpt_jax.train.evaluation import Evaluator
from fedbbpt_jax.zo import HParams, make_estimator


@dataclasses.dataclass(kw_only=True)
class GlueExperiment(Experiment):
  """A GLUE experiment: ``train.build.Experiment`` plus tokenizer, vocabulary and dev set."""

  task: MaskedLMClassification
  glue_task: GlueTask
  tokenizer: RobertaTokenizer
  decoder: Any  # ``tokenizers.Tokenizer`` of the same tokenizer.json (ids -> text)
  vocabulary: np.ndarray
  verbalizer_ids: list[int]
  dev_x: np.ndarray
  dev_y: np.ndarray
  test_split: str
  mapping_calls: int = 0  # verbalizers are token ids: no black-box call before training

  def prompt_tokens(self, params: Any) -> list[int]:
    """Token ids of the prompt ``params`` stands for (per-position arg-max)."""
    return [int(i) for i in np.asarray(self.task.prompt_ids(params))]

  def dev_report(self, params: Any) -> dict[str, float]:
    """Accuracy and task metric of ``params`` on the dev set (not counted as queries)."""
    rep = Evaluator(self.task, self.dev_x, self.dev_y, self.config.train.eval_batch_size
                    ).report(params)
    return {"dev_accuracy": rep["accuracy"], "dev_task_metric": rep["task_metric"]}

  def describe_params(self, params: Any) -> dict[str, Any]:
    """Summary entries: the learned prompt, task, metric, split sizes and dev scores."""
    ids = self.prompt_tokens(params)
    return {"learned_prompt": self.decoder.decode(ids), "learned_prompt_ids": ids,
            "learned_prompt_tokens": [self.decoder.id_to_token(i) for i in ids],
            "glue_task": self.glue_task.name, "task_metric_name": self.task.metric,
            "class_names": list(self.glue_task.label_names),
            "verbalizers": list(self.glue_task.verbalizers),
            "verbalizer_ids": list(self.verbalizer_ids),
            "candidate_vocabulary_size": int(len(self.vocabulary)),
            "train_examples": int(np.sum(np.asarray(self.clients.num_examples))),
            "dev_examples": int(len(self.dev_y)),
            "test_split": f"glue/{self.glue_task.name} {self.test_split} (GLUE dev set), "
                          f"{len(self.test_y)} examples",
            **self.dev_report(params)}


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
  fragment (``Ġ``, ``able``). BDPL's flattening keeps such fragments (methods.md
  4.1); dropping them is a choice.
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


def build_glue_experiment(config: ml_collections.ConfigDict) -> GlueExperiment:
  """Checks the paths, loads GLUE and the masked LM, builds task, BDPL and algorithms."""
  check_glue_paths(config)
  dcfg, pcfg = config.data, config.prompt
  model_dir = os.path.expanduser(config.blackbox.model_dir)
  tfds_dir = os.path.expanduser(dcfg.tfds_dir)
  test_split = dcfg.test_split or GLUE_TASKS[dcfg.task].eval_splits[0]
  try:
    glue = load_glue(dcfg.task, tfds_dir, splits=("train", test_split))
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
  keep = np.flatnonzero(test.labels >= 0)
  if dcfg.test_examples and dcfg.test_examples < len(keep):
    keep = np.sort(np.random.default_rng(TEST_SUBSET_SEED).permutation(keep)[:dcfg.test_examples])
  test_x = encode_rows(tokenizer, gtask, [test.texts[i] for i in keep], p)
  test_y = test.labels[keep]

  # Client parts index the whole train split; the packed rows follow ``few.train``.
  position = {int(i): j for j, i in enumerate(few.train)}
  parts = [np.asarray([position[int(i)] for i in part], np.int64) for part in few.parts]
  packed = pack_clients(train_x, train_y, parts)
  clients = ClientData(x=jnp.asarray(packed.x), y=jnp.asarray(packed.y, jnp.int32),
                       num_examples=jnp.asarray(packed.num_examples, jnp.int32))
  histograms = label_histograms(train_y, parts, num_classes)

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

  blackbox = make_masked_lm_blackbox(model_dir, config.blackbox.max_length, verbalizer_ids)
  prompt = make_discrete_prompt(vocabulary, p)
  task = MaskedLMClassification(blackbox=blackbox, prompt=prompt, prompt_length=p,
                                pad_id=tokenizer.pad_id, metric=gtask.metric)

  estimator = make_estimator(config.zo.estimator, config.zo.num_directions)
  optimizer = make_client_optimizer(config.client.optimizer, config.client.weight_decay)
  local_update = make_local_update(task.candidate_losses, estimator, optimizer,
                                   config.client.local_steps, config.client.batch_size,
                                   project=project_tree)
  algorithm, cohort_size, round_cost = build_algorithm(config, task.candidate_losses, estimator,
                                                       optimizer, local_update, project_tree)
  local_only = make_local_only(local_update, dcfg.num_clients, config.parallel.backend)
  hparams = HParams.create(lr=config.client.lr, lr_offset=config.client.lr_offset,
                           lr_decay=config.client.lr_decay, sigma=1.0)
  root_key = jax.random.key(config.seed)
  init_params = prompt.init(jax.random.fold_in(root_key, 2**31 - 1))
  return GlueExperiment(config=config, task=task, clients=clients, test_x=test_x, test_y=test_y,
                        hparams=hparams, init_params=init_params, algorithm=algorithm,
                        local_only=local_only, root_key=root_key, label_histograms=histograms,
                        num_candidates=estimator.num_candidates, cohort_size=cohort_size,
                        mapping_queries=0, round_cost=round_cost, glue_task=gtask,
                        tokenizer=tokenizer, decoder=decoder, vocabulary=vocabulary,
                        verbalizer_ids=verbalizer_ids, dev_x=dev_x, dev_y=dev_y,
                        test_split=test_split)
