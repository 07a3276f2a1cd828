"""Builds a text experiment (``config.task.family == 'text'``) from its config.

Data flow: drug reviews -> word-piece ids (review part only) -> federated
partition -> packed clients. The black box is a frozen sentence encoder; the
classes are verbalizer texts embedded once through the same black box (counted
queries); the prompt (``config.prompt.kind``) is either

* ``'discrete'``: BDPL's categorical prompt over a candidate vocabulary computed from
  the training texts; clients run the BDPL estimator with AdamW and project back
  onto the simplex after every step; or
* ``'soft'``: BBT's continuous prompt ``base + reshape(Az)`` (``prompts.soft``) at the
  embedding layer of a frozen LOCAL SURROGATE that takes input embeddings (a provider
  API takes tokens, not embeddings); clients run a continuous estimator
  (``config.zo.estimator``) with SGD or Adam.

The algorithm (``config.server.algorithm``: fedbbpt, fedone, centralized, and fedbpt
for the soft prompt) comes from ``train.algorithms.build_algorithm`` with its exact
``RoundCost``.

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
from fedbbpt_jax.blackbox.factory import make_text_blackbox
from fedbbpt_jax.blackbox.text_zoo import make_embedding_encoder, make_text_tokenizer
from fedbbpt_jax.federated import ClientData, make_client_optimizer, make_local_only, make_local_update
from fedbbpt_jax.models.minilm import TextTokenizer
from fedbbpt_jax.prompts import (candidate_vocabulary, make_discrete_prompt, make_soft_prompt,
                                 project_tree, random_projection)
from fedbbpt_jax.tasks import SoftPromptTextClassification, TextClassification, review_pieces
from fedbbpt_jax.train.algorithms import build_algorithm
from fedbbpt_jax.train.build import Experiment
from fedbbpt_jax.train.config_check import ConfigError
from fedbbpt_jax.zo import HParams, make_estimator


@dataclasses.dataclass(kw_only=True)
class TextExperiment(Experiment):
  """A text experiment: ``train.build.Experiment`` plus the tokenizer, classes and vocabulary.

  ``vocabulary`` is the discrete prompt's candidate ids (empty for a soft prompt);
  ``base_prompt_ids`` the soft prompt's placeholder ids (empty for a discrete one).
  """

  task: TextClassification
  mapping_calls: int
  tokenizer: TextTokenizer
  class_names: tuple[str, ...]
  vocabulary: np.ndarray
  base_prompt_ids: tuple[int, ...] = ()

  def prompt_text(self, params: Any) -> tuple[str, list[int]]:
    """The prompt ``params`` stands for as text and ids.

    Discrete: the per-position arg-max. Soft: the nearest word piece (cosine) to each
    prompt embedding, an interpretation only (the prompt itself is continuous).
    """
    if isinstance(self.task, SoftPromptTextClassification):
      ids = nearest_tokens(self.task, params)
    else:
      ids = [int(i) for i in np.asarray(self.task.prompt_ids(params))]
    return " ".join(self.tokenizer.id_to_token(i) for i in ids), ids

  def describe_params(self, params: Any) -> dict[str, Any]:
    """Summary entries: the learned prompt, the classes and the prompt space's size."""
    text, ids = self.prompt_text(params)
    out: dict[str, Any] = {"class_names": list(self.class_names)}
    if isinstance(self.task, SoftPromptTextClassification):
      z = np.asarray(params["z"], np.float64)
      base = " ".join(self.tokenizer.id_to_token(i) for i in self.base_prompt_ids)
      out.update(soft_prompt_nearest_tokens=text, soft_prompt_nearest_ids=ids,
                 soft_prompt_base=base, soft_prompt_dim=int(z.size),
                 soft_prompt_z_norm=float(np.linalg.norm(z)))
    else:
      out.update(learned_prompt=text, learned_prompt_ids=ids,
                 candidate_vocabulary_size=int(len(self.vocabulary)))
    return out


def nearest_tokens(task: SoftPromptTextClassification, params: Any) -> list[int]:
  """Per prompt position, the word piece whose embedding is most cosine-similar."""
  prompt = np.asarray(task.prompt_embeddings(params), np.float32)
  table = np.asarray(task.blackbox.embed(jnp.arange(task.blackbox.vocab_size)), np.float32)
  unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
  return [int(i) for i in np.argmax(unit(prompt) @ unit(table).T, axis=1)]


def verbalizer_texts(cfg: ml_collections.ConfigDict, class_names: tuple[str, ...]) -> list[str]:
  """One text per class: ``cfg.verbalizers`` if given, else the template filled per name."""
  if cfg.verbalizers:
    texts = list(cfg.verbalizers)
    if len(texts) != len(class_names):
      raise ConfigError(f"config.task.verbalizers has {len(texts)} entries, the task has "
                        f"{len(class_names)} classes {list(class_names)}")
    return texts
  return [cfg.verbalizer_template.format(name) for name in class_names]


def class_embeddings(blackbox, tokenizer: TextTokenizer, texts: list[str],
                     embed_rows=None) -> jnp.ndarray:
  """Unit-norm black-box embeddings ``[C, H]`` of the verbalizer texts (one call).

  ``embed_rows``: for a black box on embeddings, turns id rows into its inputs.
  """
  ids = jnp.asarray(tokenizer(texts)[0])
  if embed_rows is None:
    return jax.jit(blackbox)(ids)
  return jax.jit(lambda i: blackbox(embed_rows(i)))(ids)


def base_prompt_ids(tokenizer: TextTokenizer, init_text: str, length: int) -> np.ndarray:
  """``length`` word-piece ids of ``init_text``, cycled (or cut) to the prompt length."""
  pieces = tokenizer.pieces(init_text)
  if not pieces:
    raise ConfigError(f"config.prompt.init_text={init_text!r} has no word pieces; give a "
                      "non-empty text (its embeddings are the soft prompt at z = 0)")
  return np.asarray([pieces[i % len(pieces)] for i in range(length)], np.int32)


def build_text_experiment(config: ml_collections.ConfigDict) -> TextExperiment:
  """Loads the reviews, partitions them, builds black box, task, prompt and algorithms."""
  dcfg, pcfg = config.data, config.prompt
  ds = data_lib.load_drug_reviews(dcfg.task, min_train_reviews=dcfg.min_train_reviews)
  num_classes = len(ds.class_names)
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

  verbalizers = verbalizer_texts(config.task, ds.class_names)
  task_ids = dict(prompt_length=pcfg.length, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                  pad_id=tokenizer.pad_id, temperature=config.task.temperature)
  vocabulary, base_ids, project = np.zeros((0,), np.int32), (), None
  if pcfg.kind == "soft":
    blackbox = make_embedding_encoder(config.blackbox.model, max_length)
    unprompted = SoftPromptTextClassification(blackbox=blackbox, prompt=None,
                                              class_embeddings=jnp.zeros((num_classes, 1)),
                                              **task_ids)
    base = base_prompt_ids(tokenizer, pcfg.init_text, pcfg.length)
    projection = random_projection(pcfg.projection_seed, pcfg.dim, pcfg.length,
                                   blackbox.input_shape[1], blackbox.embedding_std,
                                   pcfg.projection_alpha, pcfg.projection_sigma)
    prompt = make_soft_prompt(projection, blackbox.embed(jnp.asarray(base)))
    classes = class_embeddings(blackbox, tokenizer, verbalizers, unprompted.embed_rows)
    task = dataclasses.replace(unprompted, prompt=prompt, class_embeddings=classes)
    base_ids = tuple(int(i) for i in base)
  else:
    blackbox = make_text_blackbox(config.blackbox)  # local surrogate, or the served encoder
    vocabulary = candidate_vocabulary(pcfg.vocabulary,
                                      [ds.train_texts[i] for p in parts for i in p],
                                      tokenizer.pieces, pcfg.vocabulary_size,
                                      exclude=specials + (tokenizer.unk_id,))
    prompt = make_discrete_prompt(vocabulary, pcfg.length)
    task = TextClassification(blackbox=blackbox, prompt=prompt,
                              class_embeddings=class_embeddings(blackbox, tokenizer, verbalizers),
                              **task_ids)
    project = project_tree

  estimator = make_estimator(config.zo.estimator, config.zo.num_directions)
  optimizer = make_client_optimizer(config.client.optimizer, config.client.weight_decay)
  local_update = make_local_update(task.candidate_losses, estimator, optimizer,
                                   config.client.local_steps, config.client.batch_size,
                                   project=project)
  try:
    algorithm, cohort_size, round_cost = build_algorithm(config, task.candidate_losses, estimator,
                                                         optimizer, local_update, project)
  except ValueError as e:  # e.g. fedbpt without cma_es: name the fields
    raise ConfigError(str(e)) from e
  local_only = make_local_only(local_update, dcfg.num_clients, config.parallel.backend)
  zcfg = config.zo
  hparams = HParams.create(lr=config.client.lr, lr_offset=config.client.lr_offset,
                           lr_decay=config.client.lr_decay, sigma=zcfg.get("sigma", 1.0),
                           sigma_decay=zcfg.get("sigma_decay", 0.0),
                           momentum=zcfg.get("momentum", 0.0))
  root_key = jax.random.key(config.seed)
  init_params = prompt.init(jax.random.fold_in(root_key, 2**31 - 1))
  return TextExperiment(config=config, task=task, clients=clients, test_x=test_x, test_y=test_y,
                        hparams=hparams, init_params=init_params, algorithm=algorithm,
                        local_only=local_only, root_key=root_key, label_histograms=histograms,
                        num_candidates=estimator.num_candidates, cohort_size=cohort_size,
                        mapping_queries=len(verbalizers), mapping_calls=1,
                        round_cost=round_cost, tokenizer=tokenizer,
                        class_names=ds.class_names, vocabulary=vocabulary,
                        base_prompt_ids=base_ids)
