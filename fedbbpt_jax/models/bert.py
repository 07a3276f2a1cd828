"""A BERT-family transformer encoder in Flax (inference only, no dropout).

Three reusable modules, so that RoBERTa-style models can share them:

* ``TransformerEmbeddings``: word + position + token-type embeddings and a
  LayerNorm. Takes either ``input_ids`` or ``inputs_embeds`` (soft prompts),
  with a ``position_offset`` (0 for BERT; ``pad_token_id + 1 = 2`` for RoBERTa)
  and a configurable ``type_vocab_size`` (2 for BERT, 1 for RoBERTa).
* ``TransformerLayer``: post-LayerNorm self-attention + feed-forward block.
* ``TransformerEncoder``: a stack of ``num_layers`` layers.

``BertModel`` composes them and returns the last hidden states; ``mean_pool``
gives sentence-transformers' mean pooling. Parameter names mirror Hugging Face's
(``query``/``key``/``value``, ``intermediate``, ``output``) so that weight loaders
are a rename. Positions are ``arange(L) + position_offset``; with right padding
this equals RoBERTa's mask-based positions on every real token.

Example:
    >>> model = BertModel(BertConfig.minilm_l6())
    >>> hidden = model.apply(variables, input_ids, attention_mask)   # [B, L, 384]
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "BertConfig",
    "BertModel",
    "TransformerEmbeddings",
    "TransformerEncoder",
    "TransformerLayer",
    "mean_pool",
    "normalized_mean_pool",
]


@dataclass(frozen=True)
class BertConfig:
    """Static architecture of a BERT-family encoder.

    Attributes:
        vocab_size: Number of word-piece ids.
        hidden_size: Width of every hidden state.
        num_layers: Number of transformer layers.
        num_heads: Attention heads (``hidden_size`` must be divisible by it).
        intermediate_size: Width of the feed-forward block.
        max_position_embeddings: Rows of the position table.
        type_vocab_size: Rows of the token-type table (2 BERT, 1 RoBERTa).
        layer_norm_eps: LayerNorm epsilon.
        pad_token_id: Id of the padding token.
        position_offset: Added to ``arange(L)`` to index the position table.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_offset: int = 0

    @classmethod
    def minilm_l6(cls) -> "BertConfig":
        """all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads."""
        return cls(hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


class TransformerEmbeddings(nn.Module):
    """Token, position and token-type embeddings followed by a LayerNorm."""

    config: BertConfig

    def setup(self) -> None:
        c = self.config
        self.word_embeddings = nn.Embed(c.vocab_size, c.hidden_size, name="word_embeddings")
        self.position_embeddings = nn.Embed(
            c.max_position_embeddings, c.hidden_size, name="position_embeddings"
        )
        self.token_type_embeddings = nn.Embed(
            c.type_vocab_size, c.hidden_size, name="token_type_embeddings"
        )
        self.layer_norm = nn.LayerNorm(epsilon=c.layer_norm_eps, name="layer_norm")

    def embed_tokens(self, input_ids: jnp.ndarray) -> jnp.ndarray:
        """Word embeddings ``[..., H]`` of ``input_ids`` (to build soft-prompt inputs)."""
        return self.word_embeddings(input_ids)

    def __call__(
        self,
        input_ids: jnp.ndarray | None = None,
        inputs_embeds: jnp.ndarray | None = None,
        token_type_ids: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Returns embedded inputs ``[B, L, H]``.

        Args:
            input_ids: ``[B, L]`` int ids (exactly one of ids / embeds).
            inputs_embeds: ``[B, L, H]`` word embeddings (e.g. with soft prompts).
            token_type_ids: ``[B, L]``; default all zeros.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        length = inputs_embeds.shape[-2]
        positions = jnp.arange(length) + self.config.position_offset
        x = inputs_embeds + self.position_embeddings(positions)
        if token_type_ids is None:
            x = x + self.token_type_embeddings(jnp.zeros((length,), jnp.int32))
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.layer_norm(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with an additive key mask (no output projection)."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
        c = self.config
        batch, length, _ = x.shape

        def heads(name: str) -> jnp.ndarray:
            y = nn.Dense(c.hidden_size, name=name)(x)
            return y.reshape(batch, length, c.num_heads, c.head_dim)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(c.head_dim))
        bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, jnp.finfo(x.dtype).min)
        weights = jax.nn.softmax(scores + bias, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        return out.reshape(batch, length, c.hidden_size)


class TransformerLayer(nn.Module):
    """One post-LayerNorm BERT layer: attention, add & norm, feed-forward, add & norm."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
        c = self.config
        attended = SelfAttention(c, name="attention")(x, attention_mask)
        attended = nn.Dense(c.hidden_size, name="attention_output")(attended)
        x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="attention_layer_norm")(x + attended)
        hidden = nn.Dense(c.intermediate_size, name="intermediate")(x)
        hidden = jax.nn.gelu(hidden, approximate=False)
        hidden = nn.Dense(c.hidden_size, name="output")(hidden)
        return nn.LayerNorm(epsilon=c.layer_norm_eps, name="output_layer_norm")(x + hidden)


class TransformerEncoder(nn.Module):
    """A stack of ``config.num_layers`` transformer layers (``layer_0`` ...)."""

    config: BertConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.config.num_layers):
            x = TransformerLayer(self.config, name=f"layer_{i}")(x, attention_mask)
        return x


class BertModel(nn.Module):
    """Embeddings + encoder; returns the last hidden states ``[B, L, H]``."""

    config: BertConfig

    def setup(self) -> None:
        self.embeddings = TransformerEmbeddings(self.config, name="embeddings")
        self.encoder = TransformerEncoder(self.config, name="encoder")

    def embed_tokens(self, input_ids: jnp.ndarray) -> jnp.ndarray:
        """Word embeddings of ``input_ids`` (use with ``method=BertModel.embed_tokens``)."""
        return self.embeddings.embed_tokens(input_ids)

    def __call__(
        self,
        input_ids: jnp.ndarray | None,
        attention_mask: jnp.ndarray,
        inputs_embeds: jnp.ndarray | None = None,
        token_type_ids: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Encodes ids (or embeddings) under ``attention_mask`` (1 = real token)."""
        x = self.embeddings(input_ids, inputs_embeds, token_type_ids)
        return self.encoder(x, attention_mask)


def mean_pool(hidden: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
    """Mean of ``hidden [B, L, H]`` over real tokens (sentence-transformers pooling)."""
    m = attention_mask.astype(hidden.dtype)[..., None]
    return jnp.sum(hidden * m, axis=-2) / jnp.maximum(jnp.sum(m, axis=-2), 1e-9)


def normalized_mean_pool(hidden: jnp.ndarray, attention_mask: jnp.ndarray) -> jnp.ndarray:
    """Mean-pooled embeddings scaled to unit L2 norm ``[B, H]``."""
    pooled = mean_pool(hidden, attention_mask)
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)
