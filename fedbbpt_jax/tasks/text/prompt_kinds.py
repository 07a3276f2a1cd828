"""The text family's prompt kinds (``prompts.PROMPTS`` entries with tag ``'text'``).

Each kind turns the shared text set-up (``TextSetup``: tokenizer, the candidate
vocabulary on demand, verbalizers) into a prompted task (``prompts.PromptedTask``): its
black box, task, prompt initialisation, projection and how a learned prompt is described.

* ``discrete`` (registered in ``prompts/registry.py``, shared with the GLUE family):
  BDPL's categorical prompt over a candidate vocabulary of the clients' training texts
  (derived from their counts, ``candidate_vocabulary.py``); the black box is the
  sentence encoder on token ids (local or served, ``TextSetup.token_task``); parameters
  are projected back onto the simplex after every step.
* ``soft`` (registered here): BBT's continuous prompt ``base + reshape(Az)`` at the
  embedding layer of a frozen LOCAL SURROGATE that takes input embeddings (a provider API
  takes tokens).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.blackbox.factory import make_text_blackbox
from fedbbpt_jax.blackbox.text_zoo import make_embedding_encoder
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.models.minilm import TextTokenizer
from fedbbpt_jax.prompts import (PROMPTS, PromptedTask, PromptGenerator, make_soft_prompt,
                                 random_projection)
from fedbbpt_jax.tasks.local_setup import read_setup_file, write_setup_file
from fedbbpt_jax.tasks.protocol import NODE, BuildOptions
from fedbbpt_jax.tasks.text.soft_prompt_text import SoftPromptTextClassification
from fedbbpt_jax.tasks.text.text_classification import TextClassification

PyTree = Any
CLASS_EMBEDDINGS_FILE = "class_embeddings.npz"  # the verbalizers' embeddings (set-up file)


class TextSetup(NamedTuple):
  """What every text prompt kind starts from (a ``prompts.TokenPromptSetup``).

  Attributes:
    config: the experiment config.
    options: build options (black-box wrapper).
    tokenizer: word-piece tokenizer padding to ``blackbox.max_length``.
    vocabulary: ``() -> [N]`` candidate word-piece ids, derived (or read back) when a
      kind asks (``candidate_vocabulary.py``).
    verbalizers: one text per class.
    task_fields: the ``TextClassification`` fields every kind shares (ids, temperature).
    kept: the set-up files this build keeps in its workdir (appended to as it keeps them).
  """

  config: Any
  options: BuildOptions
  tokenizer: TextTokenizer
  vocabulary: Callable[[], np.ndarray]
  verbalizers: list[str]
  task_fields: dict
  kept: list[str]

  def class_embeddings(self, blackbox: BlackBox, embed_rows: Callable | None = None
                       ) -> jnp.ndarray:
    """The verbalizers' embeddings (``class_embeddings``), kept in the workdir as
    ``CLASS_EMBEDDINGS_FILE``: computed once by a simulation or a server (its own
    query), read back on resume, read by a node from the file the server sent (a node
    still gathering the set-up holds zeros of their shape: it pays no query for them)."""
    workdir = self.options.workdir
    if workdir:
      self.kept.append(CLASS_EMBEDDINGS_FILE)
    kept = read_setup_file(workdir, CLASS_EMBEDDINGS_FILE)
    if kept is not None:
      return jnp.asarray(kept)
    compute = lambda: class_embeddings(blackbox, self.tokenizer, self.verbalizers, embed_rows)
    if self.options.role == NODE:
      shape = jax.eval_shape(compute)
      return jnp.zeros(shape.shape, shape.dtype)
    embeddings = compute()
    write_setup_file(workdir, CLASS_EMBEDDINGS_FILE, np.asarray(embeddings))
    return embeddings

  def candidate_vocabulary(self) -> np.ndarray:
    """The clients' frequent words or PMI n-grams as word-piece ids (no special tokens)."""
    return self.vocabulary()

  def token_task(self, prompt: PromptGenerator) -> tuple[TextClassification, BlackBox]:
    """Cosine-verbalizer classification by the sentence encoder on token ids."""
    blackbox = self.options.wrap(make_text_blackbox(self.config.blackbox))
    task = TextClassification(
        blackbox=blackbox, prompt=prompt,
        class_embeddings=self.class_embeddings(blackbox), **self.task_fields)
    return task, blackbox

  def describe_prompt_ids(self, ids: list[int]) -> dict:
    """The prompt's word pieces joined by spaces, and its ids."""
    return {"learned_prompt": _tokens_text(self.tokenizer, ids), "learned_prompt_ids": ids}


def class_embeddings(blackbox: BlackBox, tokenizer: TextTokenizer, texts: list[str],
                     embed_rows: Callable | None = None) -> jnp.ndarray:
  """Unit-norm black-box embeddings ``[C, H]`` of the verbalizer texts (one call).

  ``embed_rows``: for a black box on embeddings, turns id rows into its inputs.
  """
  ids = jnp.asarray(tokenizer(texts)[0])
  if embed_rows is None:
    return jax.jit(blackbox)(ids)
  return jax.jit(lambda i: blackbox(embed_rows(i)))(ids)


def _tokens_text(tokenizer: TextTokenizer, ids: list[int]) -> str:
  return " ".join(tokenizer.id_to_token(i) for i in ids)


def nearest_tokens(task: SoftPromptTextClassification, params: PyTree) -> list[int]:
  """Per prompt position, the word piece whose embedding is most cosine-similar."""
  prompt = np.asarray(task.prompt_embeddings(params), np.float32)
  table = np.asarray(task.blackbox.embed(jnp.arange(task.blackbox.vocab_size)), np.float32)
  unit = lambda a: a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
  return [int(i) for i in np.argmax(unit(prompt) @ unit(table).T, axis=1)]


def base_prompt_ids(tokenizer: TextTokenizer, init_text: str, length: int) -> np.ndarray:
  """``length`` word-piece ids of ``init_text``, cycled (or cut) to the prompt length."""
  pieces = tokenizer.pieces(init_text)
  if not pieces:
    raise ConfigError(f"config.prompt.init_text={init_text!r} has no word pieces; give a "
                      "non-empty text (its embeddings are the soft prompt at z = 0)")
  return np.asarray([pieces[i % len(pieces)] for i in range(length)], np.int32)


@PROMPTS.register("soft", tags=("text",))
def soft_prompt(setup: TextSetup) -> PromptedTask:
  """BBT's soft prompt ``base + reshape(Az)`` on the embedding-input surrogate."""
  config, tok = setup.config, setup.tokenizer
  pcfg = config.prompt
  blackbox = setup.options.wrap(make_embedding_encoder(config.blackbox.model,
                                                       config.blackbox.max_length))
  num_classes = len(setup.verbalizers)
  unprompted = SoftPromptTextClassification(blackbox=blackbox, prompt=None,
                                            class_embeddings=jnp.zeros((num_classes, 1)),
                                            **setup.task_fields)
  base = base_prompt_ids(tok, pcfg.init_text, pcfg.length)
  projection = random_projection(pcfg.projection_seed, pcfg.dim, pcfg.length,
                                 blackbox.input_shape[1], blackbox.embedding_std,
                                 pcfg.projection_alpha, pcfg.projection_sigma)
  prompt = make_soft_prompt(projection, blackbox.embed(jnp.asarray(base)))
  classes = setup.class_embeddings(blackbox, unprompted.embed_rows)
  task = dataclasses.replace(unprompted, prompt=prompt, class_embeddings=classes)

  def describe(params: PyTree) -> dict:
    ids = nearest_tokens(task, params)
    z = np.asarray(params["z"], np.float64)
    return {"soft_prompt_nearest_tokens": _tokens_text(tok, ids),
            "soft_prompt_nearest_ids": ids,
            "soft_prompt_base": _tokens_text(tok, [int(i) for i in base]),
            "soft_prompt_dim": int(z.size), "soft_prompt_z_norm": float(np.linalg.norm(z))}

  return PromptedTask(task, blackbox, prompt.init, None, describe)
