"""Text black boxes built offline from real pre-trained weights.

A text encoder takes int32 token ids ``[N, L]`` (``[CLS] ... [SEP] [PAD]...``;
the attention mask is ``ids != pad_id``, as an API receiving padded ids would
derive it) and returns L2-normalised mean-pooled sentence embeddings ``[N, H]``.

Example:
    >>> bb = make_text_encoder("all_minilm_l6_v2", max_length=64)
    >>> tok = make_text_tokenizer("all_minilm_l6_v2", max_length=64)
    >>> ids, _ = tok(["The movie was wonderful."])
    >>> emb = bb(jnp.asarray(ids))      # [1, 384], unit norm

``make_embedding_encoder`` is the same encoder on input embeddings ``[N, L, H]``
(BBT-style soft prompts); it exists only as a local surrogate.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple, Sequence

import jax.numpy as jnp

from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.models.bert import normalized_mean_pool
from fedbbpt_jax.models.minilm import TextTokenizer, load_minilm
from fedbbpt_jax.models.roberta import RobertaTokenizer, load_roberta_mlm, verbalizer_logits



class SentenceEncoderEntry(NamedTuple):
  """A registered sentence encoder: ``load() -> (BertModel-like net, variables)`` and
  ``tokenizer(max_length) -> TextTokenizer``; registered in ``BLACK_BOXES`` with the tag
  ``'text'``."""

  load: Callable[[], tuple[Any, Any]]
  tokenizer: Callable[[int], TextTokenizer]


BLACK_BOXES.register("all_minilm_l6_v2", SentenceEncoderEntry(load_minilm, TextTokenizer.minilm),
                     tags=("text",))


class TextEncoderBlackBox(SurrogateBlackBox):
  """A frozen sentence encoder on int32 token ids (no float cast of the inputs).

  Attributes:
    pad_id: id whose positions are masked out.
    vocab_size: number of token ids (valid ids are ``0 .. vocab_size - 1``).
  """

  def __init__(self, name: str, apply_fn: Callable[[Any, jnp.ndarray, jnp.ndarray], jnp.ndarray],
               variables: Any, max_length: int, output_size: int, pad_id: int,
               vocab_size: int):
    super().__init__(name, lambda v, ids: apply_fn(v, ids, (ids != pad_id).astype(jnp.int32)),
                     variables, (max_length,), output_size)
    self.pad_id = int(pad_id)
    self.vocab_size = int(vocab_size)

  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    return self._apply_fn(self._variables, inputs.astype(jnp.int32))


class EmbeddingEncoderBlackBox(SurrogateBlackBox):
  """A frozen sentence encoder on input EMBEDDINGS ``[N, L, H]`` (soft prompts; surrogate only).

  BBT-style soft prompts enter at the embedding layer, so this black box takes word
  embeddings instead of token ids and runs the rest of the encoder (position and
  token-type embeddings, LayerNorm, layers, pooling). A provider API takes tokens,
  not embeddings: this exists ONLY as a frozen local surrogate; there is no remote
  counterpart. The attention mask is derived from the inputs as an API would derive
  it from padded ids: an all-zero row is padding, any other row a real token.

  ``embed(ids)`` is the surrogate's word-embedding lookup (what a caller needs to turn
  text into inputs; a table lookup, not a forward: it costs no queries), and
  ``embedding_std`` the std of the flattened word-embedding matrix (BBT's ``sigma_E``).
  Queries are counted by the callers from static shapes, as for every black box.
  """

  def __init__(self, name: str, apply_fn: Callable[[Any, jnp.ndarray, jnp.ndarray], jnp.ndarray],
               variables: Any, word_embeddings: jnp.ndarray, max_length: int, output_size: int):
    table = jnp.asarray(word_embeddings, jnp.float32)
    hidden = int(table.shape[1])
    super().__init__(name, lambda v, e: apply_fn(v, e, padding_mask(e)), variables,
                     (max_length, hidden), output_size)
    self._table = table
    self.vocab_size = int(table.shape[0])
    self.embedding_std = float(jnp.std(table))

  def embed(self, ids: jnp.ndarray) -> jnp.ndarray:
    """Word embeddings ``[..., H]`` of ``ids`` (no positions, no LayerNorm)."""
    return jnp.take(self._table, jnp.asarray(ids, jnp.int32), axis=0)


def padding_mask(embeds: jnp.ndarray) -> jnp.ndarray:
  """int32 ``[N, L]`` mask: 1 where a row of ``embeds [N, L, H]`` is not all zeros."""
  return jnp.any(embeds != 0, axis=-1).astype(jnp.int32)


def _entry(model: str) -> SentenceEncoderEntry:
  return BLACK_BOXES.get(model, "blackbox.model", tag="text")


def make_text_encoder(model: str, max_length: int) -> TextEncoderBlackBox:
  """Returns the frozen sentence encoder ``model`` on ids ``[N, max_length]``.

  Args:
    model: a name registered in ``BLACK_BOXES`` with the tag ``'text'``.
    max_length: padded sequence length of every input row (<= 512).
  """
  net, variables = _entry(model).load()
  if not 2 <= max_length <= net.config.max_position_embeddings:
    raise ValueError(f"max_length={max_length} must be in [2, "
                     f"{net.config.max_position_embeddings}]")
  apply_fn = lambda v, ids, mask: normalized_mean_pool(net.apply(v, ids, mask), mask)
  return TextEncoderBlackBox(model, apply_fn, variables, max_length, net.config.hidden_size,
                             net.config.pad_token_id, net.config.vocab_size)


def make_embedding_encoder(model: str, max_length: int) -> EmbeddingEncoderBlackBox:
  """Returns the frozen encoder ``model`` on input embeddings ``[N, max_length, H]``.

  Surrogate only (a served model takes token ids); outputs are the same unit-norm
  mean-pooled embeddings as ``make_text_encoder``'s for the same (embedded) rows.
  """
  net, variables = _entry(model).load()
  if not 2 <= max_length <= net.config.max_position_embeddings:
    raise ValueError(f"max_length={max_length} must be in [2, "
                     f"{net.config.max_position_embeddings}]")
  table = variables["params"]["embeddings"]["word_embeddings"]["embedding"]
  apply_fn = lambda v, e, mask: normalized_mean_pool(net.apply(v, None, mask, inputs_embeds=e),
                                                     mask)
  return EmbeddingEncoderBlackBox(f"{model}:embeddings", apply_fn, variables, table, max_length,
                                  net.config.hidden_size)


def make_text_tokenizer(model: str, max_length: int) -> TextTokenizer:
  """Returns the tokenizer of ``model`` padding and truncating to ``max_length``."""
  return _entry(model).tokenizer(max_length)


def make_masked_lm_blackbox(path: str, max_length: int,
                            verbalizer_ids: Sequence[int] | None = None) -> TextEncoderBlackBox:
  """Returns a frozen RoBERTa masked LM (local files) scoring ``<mask>`` on ids ``[N, max_length]``.

  Rows are ``<s> prompt text ... <mask> ... </s> <pad>...`` (see
  ``RobertaTokenizer.encode_template``); outputs are the logits at each row's
  first ``<mask>``: ``[N, vocab]``, or ``[N, C]`` restricted to ``verbalizer_ids``.

  Args:
    path: folder with ``config.json`` and ``model.safetensors`` or a legacy
      ``pytorch_model.bin`` (e.g. a local copy of roberta-large).
    max_length: padded sequence length (<= max_position_embeddings - 2).
    verbalizer_ids: optional label-word token ids to keep.
  """
  net, variables = load_roberta_mlm(path)
  limit = net.config.max_position_embeddings - net.config.position_offset
  if not 3 <= max_length <= limit:
    raise ValueError(f"max_length={max_length} must be in [3, {limit}]")
  keep = None if verbalizer_ids is None else tuple(int(i) for i in verbalizer_ids)

  def apply_fn(v: Any, ids: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    logits = net.apply(v, ids, mask)
    return logits if keep is None else verbalizer_logits(logits, keep)

  output_size = net.config.vocab_size if keep is None else len(keep)
  return TextEncoderBlackBox(f"masked_lm:{os.path.basename(os.path.normpath(path))}", apply_fn,
                             variables, max_length, output_size, net.config.pad_token_id,
                             net.config.vocab_size)


def make_masked_lm_tokenizer(path: str, max_length: int) -> RobertaTokenizer:
  """Returns the tokenizer of the masked LM in ``path`` (``tokenizer.json``)."""
  return RobertaTokenizer(os.path.join(path, "tokenizer.json"), max_length)
