"""Builds the text family's ``TaskBundle``: a prompt for a black-box sentence encoder.

Data flow: a registered text dataset (drug reviews) -> word-piece ids (review part
only) -> client parts -> packed clients. The classes are verbalizer texts embedded
once through the same black box (counted setup queries); the prompt kind
(``prompt.kind``, see ``prompt_kinds``) builds the black box, the task and the prompt.
The discrete prompt's candidate vocabulary comes from word counts every client takes of
its own training texts (``setup_statistics.py``; only entries counted at least
``prompt.vocabulary_min_count`` times leave it), summed and selected once, and kept in
the workdir (``candidate_vocabulary.py``).

By role (``BuildOptions.role``): a **simulation** packs every client and asks their
statistics in this process (``local_gather``); a deployment's **server** reads no
training text or label: its clients are stand-ins of the sizes the nodes reported and
its vocabulary comes from the nodes' counts (``options.gather``); it tokenizes the test
split and embeds the verbalizers as a simulation does; a **node** packs its own client
only (client ``partition_id`` of the same partition), answers the statistics for its
own texts and reads the vocabulary the server sent (a placeholder while it is gathered).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fedbbpt_jax.blackbox.text_zoo import make_text_tokenizer
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import (DATASETS, ClientData, client_data, client_parts,
                              describe_test_subset, label_histograms, size_only_clients,
                              test_subset)
from fedbbpt_jax.data.text_datasets import DEFAULT_VERBALIZER_TEMPLATE
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks.local_setup import Statistic, local_gather
from fedbbpt_jax.tasks.protocol import NODE, SERVER, SIMULATION, BuildOptions, TaskBundle
from fedbbpt_jax.tasks.text.candidate_vocabulary import VOCABULARY_FILE, candidate_vocabulary
from fedbbpt_jax.tasks.text.prompt_kinds import TextSetup
from fedbbpt_jax.tasks.text.setup_statistics import vocabulary_statistics
from fedbbpt_jax.tasks.text.text_classification import review_pieces


def verbalizer_texts(cfg: Any, class_names: tuple[str, ...],
                     dataset_template: str = DEFAULT_VERBALIZER_TEMPLATE) -> list[str]:
  """One text per class: ``cfg.verbalizers`` if given, else the template filled per name
  (``cfg.verbalizer_template``, or the dataset's own when that is ``''``)."""
  if cfg.verbalizers:
    texts = list(cfg.verbalizers)
    if len(texts) != len(class_names):
      raise ConfigError(f"config.task.verbalizers has {len(texts)} entries, the task has "
                        f"{len(class_names)} classes {list(class_names)}")
    return texts
  template = cfg.verbalizer_template or dataset_template
  return [template.format(name) for name in class_names]


def text_clients(config: Any, options: BuildOptions, ds: Any, pieces: Callable[[list[str]],
                 np.ndarray], empty_x: np.ndarray, num_classes: int
                 ) -> tuple[ClientData, np.ndarray | None, list[list[str]]]:
  """The clients this process holds (every one, one node's own, or none: the server's
  stand-ins of the sizes the nodes reported), their label histograms (None on the
  server, which sees no label) and each held client's training texts.

  ``pieces(texts)``: the texts' review word-piece ids; ``empty_x``: ``[0, length]`` ids.
  """
  if options.role == SERVER:
    return size_only_clients(options.client_sizes, empty_x), None, []
  train_texts, train_y = ds.train_texts, ds.train_labels
  parts = client_parts(train_y, config.data)
  if options.role == NODE:  # only its own texts are tokenized and packed
    own = parts[options.partition_id]
    texts = [[train_texts[i] for i in own]]
    x, y, parts = pieces(texts[0]), train_y[own], [np.arange(len(own))]
  else:
    texts = [[train_texts[i] for i in p] for p in parts]
    x, y = pieces(train_texts), train_y
  clients = options.clients(client_data(x, y, parts), num_classes)
  return clients, label_histograms(y, parts, num_classes), texts


def build_text_task(config: Any, options: BuildOptions) -> TaskBundle:
  """Loads the texts, tokenizes and partitions them, builds the prompt kind's task."""
  dcfg, pcfg = config.data, config.prompt
  role = options.role
  ds = DATASETS.get(dcfg.name, "data.name")(dcfg)
  max_length = config.blackbox.max_length
  review_length = max_length - pcfg.length - 2
  if review_length < 1:
    raise ConfigError(f"config.blackbox.max_length={max_length} leaves no room for the review "
                      f"after config.prompt.length={pcfg.length} and [CLS]/[SEP]")
  tokenizer = make_text_tokenizer(config.blackbox.model, max_length)
  piece_tokenizer = make_text_tokenizer(config.blackbox.model, review_length + 2)
  specials = (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id)
  pieces = lambda texts: review_pieces(piece_tokenizer, texts, review_length, *specials)
  test_x = pieces(ds.test_texts)
  test_x, test_y = test_subset(test_x, ds.test_labels, dcfg.test_examples)
  class_names = list(ds.class_names)
  clients, histograms, texts = text_clients(config, options, ds, pieces, test_x[:0],
                                            len(class_names))
  # Each held client's statistics, bound to its own texts (a config without
  # prompt.vocabulary_min_count has no vocabulary: the soft kind never asks them).
  min_count = int(pcfg.get("vocabulary_min_count", 1))
  statistics: list[dict[str, Statistic]] = [vocabulary_statistics(t, min_count) for t in texts]
  gather = options.gather if role == SERVER else local_gather(statistics, clients)
  asked = []

  def vocabulary() -> np.ndarray:
    asked.append(VOCABULARY_FILE)
    return candidate_vocabulary(pcfg, tokenizer, gather, options.workdir, role)

  verbalizers = verbalizer_texts(config.task, ds.class_names,
                                 getattr(ds, "verbalizer_template", DEFAULT_VERBALIZER_TEMPLATE))
  task_fields = dict(prompt_length=pcfg.length, cls_id=tokenizer.cls_id,
                     sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id,
                     temperature=config.task.temperature)
  setup = TextSetup(config=config, options=options, tokenizer=tokenizer, vocabulary=vocabulary,
                    verbalizers=verbalizers, task_fields=task_fields, kept=asked)
  prompted = PROMPTS.get(pcfg.kind, "prompt.kind")(setup)
  return TaskBundle(task=prompted.task, blackbox=prompted.blackbox,
                    clients=clients, test_x=test_x, test_y=test_y,
                    init_prompt=prompted.init_prompt, label_histograms=histograms,
                    test_split=describe_test_subset(dcfg.name, len(test_y), len(ds.test_labels)),
                    setup_examples=len(verbalizers) if role != NODE else 0,
                    setup_calls=1 if role != NODE else 0, project=prompted.project,
                    describe=lambda params: {"class_names": class_names,
                                             **prompted.describe(params)},
                    cache_files=tuple(sorted(set(asked))) if options.workdir else (),
                    statistics=(statistics[0] if role == NODE
                                else statistics if role == SIMULATION else {}),
                    client_count=int(dcfg.num_clients) if role == NODE else 0)
