"""Builds a text experiment (``config.task.family == 'text'``) from its config.

Data flow: drug reviews -> word-piece ids (review part only) -> federated
partition -> packed clients. The black box is a frozen sentence encoder; the
classes are verbalizer texts embedded once through the same black box (counted
queries); the prompt is BDPL's categorical discrete prompt over a candidate
vocabulary computed from the training texts; clients run the BDPL estimator with
AdamW and project back onto the simplex after every step.

The returned ``TextExperiment`` has the fields ``train.loop.run`` uses, as
``train.build.Experiment`` does for images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedbbpt_jax import data as data_lib
from fedbbpt_jax.blackbox.text_zoo import make_text_encoder, make_text_tokenizer
from fedbbpt_jax.federated import (ClientData, make_client_optimizer,
                                   make_fedbbpt, make_fedone, make_local_only, make_local_update,
                                   make_server_optimizer)
from fedbbpt_jax.models.minilm import TextTokenizer
from fedbbpt_jax.prompts import candidate_vocabulary, make_discrete_prompt, project_tree
from fedbbpt_jax.tasks import TextClassification, review_pieces
from fedbbpt_jax.train.build import Experiment
from fedbbpt_jax.train.config_check import ConfigError
from fedbbpt_jax.zo import HParams, make_estimator


@dataclasses.dataclass(kw_only=True)
class TextExperiment(Experiment):
  """A text experiment: ``train.build.Experiment`` plus the tokenizer, classes and vocabulary."""

  task: TextClassification
  mapping_calls: int
  tokenizer: TextTokenizer
  class_names: tuple[str, ...]
  vocabulary: np.ndarray

  def prompt_text(self, params: Any) -> tuple[str, list[int]]:
    """The prompt ``params`` stands for (per-position arg-max) as text and ids."""
    ids = [int(i) for i in np.asarray(self.task.prompt_ids(params))]
    return " ".join(self.tokenizer.id_to_token(i) for i in ids), ids

  def describe_params(self, params: Any) -> dict[str, Any]:
    """Summary entries: the learned prompt, the classes and the candidate vocabulary size."""
    text, ids = self.prompt_text(params)
    return {"learned_prompt": text, "learned_prompt_ids": ids,
            "class_names": list(self.class_names),
            "candidate_vocabulary_size": int(len(self.vocabulary))}


def verbalizer_texts(cfg: ml_collections.ConfigDict, class_names: tuple[str, ...]) -> list[str]:
  """One text per class: ``cfg.verbalizers`` if given, else the template filled per name."""
  if cfg.verbalizers:
    texts = list(cfg.verbalizers)
    if len(texts) != len(class_names):
      raise ConfigError(f"config.task.verbalizers has {len(texts)} entries, the task has "
                        f"{len(class_names)} classes {list(class_names)}")
    return texts
  return [cfg.verbalizer_template.format(name) for name in class_names]


def class_embeddings(blackbox, tokenizer: TextTokenizer, texts: list[str]) -> jnp.ndarray:
  """Unit-norm black-box embeddings ``[C, H]`` of the verbalizer texts (one call)."""
  ids, _ = tokenizer(texts)
  return jax.jit(blackbox)(jnp.asarray(ids))


def build_text_experiment(config: ml_collections.ConfigDict) -> TextExperiment:
  """Loads the reviews, partitions them, builds black box, task, BDPL and algorithms."""
  dcfg = config.data
  ds = data_lib.load_drug_reviews(dcfg.task, min_train_reviews=dcfg.min_train_reviews)
  num_classes = len(ds.class_names)
  max_length = config.blackbox.max_length
  review_length = max_length - config.prompt.length - 2
  if review_length < 1:
    raise ConfigError(f"config.blackbox.max_length={max_length} leaves no room for the review "
                      f"after config.prompt.length={config.prompt.length} and [CLS]/[SEP]")
  tokenizer = make_text_tokenizer(config.blackbox.model, max_length)
  piece_tokenizer = make_text_tokenizer(config.blackbox.model, review_length + 2)
  specials = (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id)
  train_x = review_pieces(piece_tokenizer, ds.train_texts, review_length, *specials)
  test_x = review_pieces(piece_tokenizer, ds.test_texts, review_length, *specials)
  train_y, test_y = ds.train_labels, ds.test_labels
  if dcfg.test_examples and dcfg.test_examples < len(test_y):
    keep = np.sort(np.random.default_rng(0).permutation(len(test_y))[:dcfg.test_examples])
    test_x, test_y = test_x[keep], test_y[keep]

  parts = data_lib.make_partition(dcfg.partition, train_y, dcfg.num_clients, dcfg.partition_seed,
                                  alpha=dcfg.dirichlet_alpha,
                                  shards_per_client=dcfg.shards_per_client)
  if dcfg.examples_per_client:
    rng = np.random.default_rng(dcfg.partition_seed + 1)
    parts = [np.sort(rng.choice(p, size=min(len(p), dcfg.examples_per_client), replace=False))
             for p in parts]
  packed = data_lib.pack_clients(train_x, train_y, parts)
  clients = ClientData(x=jnp.asarray(packed.x), y=jnp.asarray(packed.y, jnp.int32),
                       num_examples=jnp.asarray(packed.num_examples, jnp.int32))
  histograms = data_lib.label_histograms(train_y, parts, num_classes)

  blackbox = make_text_encoder(config.blackbox.model, max_length)
  verbalizers = verbalizer_texts(config.task, ds.class_names)
  vocabulary = candidate_vocabulary(config.prompt.vocabulary,
                                    [ds.train_texts[i] for p in parts for i in p],
                                    tokenizer.pieces, config.prompt.vocabulary_size,
                                    exclude=specials + (tokenizer.unk_id,))
  prompt = make_discrete_prompt(vocabulary, config.prompt.length)
  task = TextClassification(blackbox=blackbox, prompt=prompt, prompt_length=config.prompt.length,
                            class_embeddings=class_embeddings(blackbox, tokenizer, verbalizers),
                            cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                            pad_id=tokenizer.pad_id, temperature=config.task.temperature)

  estimator = make_estimator(config.zo.estimator, config.zo.num_directions)
  optimizer = make_client_optimizer(config.client.optimizer, config.client.weight_decay)
  local_update = make_local_update(task.candidate_losses, estimator, optimizer,
                                   config.client.local_steps, config.client.batch_size,
                                   project=project_tree)
  num_clients = dcfg.num_clients
  backend = config.parallel.backend
  if config.server.algorithm == "fedone":
    algorithm, cohort_size = make_fedone(local_update, num_clients, backend, project_tree), 1
  else:
    cohort_size = config.server.cohort_size or num_clients
    server_opt = make_server_optimizer(config.server.optimizer, config.server.lr,
                                       config.server.momentum)
    algorithm = make_fedbbpt(local_update, server_opt, num_clients, cohort_size, backend,
                             project=project_tree)
  local_only = make_local_only(local_update, num_clients, backend)
  hparams = HParams.create(lr=config.client.lr, lr_offset=config.client.lr_offset,
                           lr_decay=config.client.lr_decay, sigma=1.0)
  root_key = jax.random.key(config.seed)
  init_params = prompt.init(jax.random.fold_in(root_key, 2**31 - 1))
  return TextExperiment(config=config, task=task, clients=clients, test_x=test_x, test_y=test_y,
                        hparams=hparams, init_params=init_params, algorithm=algorithm,
                        local_only=local_only, root_key=root_key, label_histograms=histograms,
                        num_candidates=estimator.num_candidates, cohort_size=cohort_size,
                        mapping_queries=len(verbalizers), mapping_calls=1, tokenizer=tokenizer,
                        class_names=ds.class_names, vocabulary=vocabulary)
