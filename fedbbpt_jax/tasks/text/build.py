"""Builds the text family's ``TaskBundle``: a prompt for a black-box sentence encoder.

Data flow: a registered text dataset (drug reviews) -> word-piece ids (review part
only) -> client parts -> packed clients. The classes are verbalizer texts embedded
once through the same black box (counted setup queries); the prompt kind
(``prompt.kind``, see ``prompt_kinds``) builds the black box, the task and the prompt.
"""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.blackbox.text_zoo import make_text_tokenizer
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import (DATASETS, client_data, client_parts, describe_test_subset,
                              label_histograms, test_subset)
from fedbbpt_jax.data.text_datasets import DEFAULT_VERBALIZER_TEMPLATE
from fedbbpt_jax.tasks.protocol import BuildOptions, TaskBundle
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks.text.prompt_kinds import TextSetup
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


def build_text_task(config: Any, options: BuildOptions) -> TaskBundle:
  """Loads the texts, tokenizes and partitions them, builds the prompt kind's task."""
  dcfg, pcfg = config.data, config.prompt
  ds = DATASETS.get(dcfg.name, "data.name")(dcfg)
  max_length = config.blackbox.max_length
  review_length = max_length - pcfg.length - 2
  if review_length < 1:
    raise ConfigError(f"config.blackbox.max_length={max_length} leaves no room for the review "
                      f"after config.prompt.length={pcfg.length} and [CLS]/[SEP]")
  tokenizer = make_text_tokenizer(config.blackbox.model, max_length)
  piece_tokenizer = make_text_tokenizer(config.blackbox.model, review_length + 2)
  specials = (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id)
  train_x = review_pieces(piece_tokenizer, ds.train_texts, review_length, *specials)
  test_x = review_pieces(piece_tokenizer, ds.test_texts, review_length, *specials)
  train_y = ds.train_labels
  test_x, test_y = test_subset(test_x, ds.test_labels, dcfg.test_examples)
  parts = client_parts(train_y, dcfg)

  verbalizers = verbalizer_texts(config.task, ds.class_names,
                                 getattr(ds, "verbalizer_template", DEFAULT_VERBALIZER_TEMPLATE))
  task_fields = dict(prompt_length=pcfg.length, cls_id=tokenizer.cls_id,
                     sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id,
                     temperature=config.task.temperature)
  setup = TextSetup(config=config, options=options, tokenizer=tokenizer,
                    client_texts=[ds.train_texts[i] for p in parts for i in p],
                    verbalizers=verbalizers, task_fields=task_fields)
  prompted = PROMPTS.get(pcfg.kind, "prompt.kind")(setup)
  class_names = list(ds.class_names)
  clients = options.clients(client_data(train_x, train_y, parts), len(class_names))
  return TaskBundle(task=prompted.task, blackbox=prompted.blackbox,
                    clients=clients, test_x=test_x, test_y=test_y,
                    init_prompt=prompted.init_prompt,
                    label_histograms=label_histograms(train_y, parts, len(class_names)),
                    test_split=describe_test_subset(dcfg.name, len(test_y), len(ds.test_labels)),
                    setup_examples=len(verbalizers), setup_calls=1, project=prompted.project,
                    describe=lambda params: {"class_names": class_names,
                                             **prompted.describe(params)})
