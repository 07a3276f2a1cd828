"""Builds the GLUE family's ``TaskBundle``: BDPL over a RoBERTa masked LM.

Data flow (docs/algorithms.md, "BDPL" and "FedOne"): GLUE from a local TFDS folder -> BDPL's
k-shot protocol with FedOne's ``k * num_clients`` (train split halved, train
and dev drawn per class from the halves) -> client partition -> host
tokenisation of every row once as ``<s> [prompt slot] template(texts) </s>`` ->
packed clients. The black box is the frozen masked LM from
``config.blackbox.model_dir`` returning the verbalizer logits at ``<mask>``; the
prompt kind (``prompt.kind``, a ``prompts.PROMPTS`` entry tagged ``'glue'``, built from
``prompt_setup.GlueSetup``) is BDPL's categorical discrete prompt over candidate tokens of
the clients' texts (PMI n-grams or frequent words, flattened to RoBERTa BPE ids) by default.

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

from fedbbpt_jax.blackbox.text_zoo import make_masked_lm_tokenizer
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import DATASETS, client_data, label_histograms, test_subset_indices
from fedbbpt_jax.data.few_shot import FewShotError, k_shot_clients
from fedbbpt_jax.data.glue import GlueDataError, GlueTask
from fedbbpt_jax.data.registry import glue_test_split
from fedbbpt_jax.models.roberta import RobertaTokenizer
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.tasks.glue.config_check import check_glue_paths
from fedbbpt_jax.tasks.glue.metrics import task_metric
from fedbbpt_jax.tasks.glue.prompt_setup import GlueSetup
from fedbbpt_jax.tasks.protocol import BuildOptions, TaskBundle


def _decoder(model_dir: str):
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  return Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))


def example_sentences(texts: list[tuple[str, ...]]) -> list[str]:
  """Every sentence of every example (pair tasks contribute both texts)."""
  return [t for example in texts for t in example]


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


def describe_run(params: Any, prompt_entries: dict, glue_task: GlueTask,
                 verbalizer_ids: list[int], train_examples: int, dev: Evaluator,
                 test_line: str) -> dict[str, Any]:
  """Summary entries: the prompt kind's (the learned prompt), the task, metric, split sizes
  and dev scores."""
  rep = dev.report(params)
  return {**prompt_entries, "glue_task": glue_task.name, "task_metric_name": glue_task.metric,
          "class_names": list(glue_task.label_names),
          "verbalizers": list(glue_task.verbalizers),
          "verbalizer_ids": list(verbalizer_ids),
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
  setup = GlueSetup(config=config, options=options, tokenizer=tokenizer, decoder=decoder,
                    vocabulary_texts=vocab_texts, special_ids=specials,
                    verbalizer_ids=verbalizer_ids, metric=gtask.metric)
  prompted = PROMPTS.get(pcfg.kind, "prompt.kind", "glue")(setup)
  metric = (gtask.metric, functools.partial(task_metric, gtask.metric))
  dev = Evaluator(prompted.task, dev_x, dev_y, config.train.eval_batch_size, metric)
  test_line = f"glue/{gtask.name} {test_split} (GLUE dev set), {len(test_y)} examples"
  return TaskBundle(task=prompted.task, blackbox=prompted.blackbox, clients=clients,
                    test_x=test_x, test_y=test_y, init_prompt=prompted.init_prompt,
                    label_histograms=label_histograms(train_y, parts, num_classes),
                    test_split=test_line, project=prompted.project, task_metric=metric,
                    describe=lambda params: describe_run(
                        params, prompted.describe(params), gtask, verbalizer_ids,
                        len(train_y), dev, test_line))
