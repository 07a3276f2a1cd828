"""RoBERTa masked LM in Flax, its offline weight loader and tokenizer (no torch, no hub).

The encoder reuses ``bert.py``'s ``TransformerEmbeddings`` / ``TransformerEncoder``
with RoBERTa's settings: positions ``arange(L) + pad_token_id + 1`` (= 2; equal
to RoBERTa's mask-based positions on every real token with right padding) and a
single token type. The LM head is dense -> exact GELU -> LayerNorm -> decoder
tied to the word embeddings plus a bias. ``RobertaForMaskedLM`` returns the
logits at the ``<mask>`` position of each row only (the vocabulary projection
is the costly part, and BDPL needs no other position).

Weights come from a local folder (``config.json`` and ``model.safetensors`` or a
legacy, non-zip ``pytorch_model.bin``) with Hugging Face names
(``roberta.embeddings.*``, ``roberta.encoder.layer.N.*``, ``lm_head.*``). Every
expected tensor is checked by name and shape.

Example:
    >>> model, variables = load_roberta_mlm("/models/roberta-large")
    >>> tok = RobertaTokenizer("/models/roberta-large/tokenizer.json", max_length=64)
    >>> ids, mask = tok.encode_template("{s1} It was <mask>.", [("A great film.",)])
    >>> logits = model.apply(variables, ids, mask)                       # [1, vocab]
    >>> scores = verbalizer_logits(logits, tok.verbalizer_ids(["terrible", "great"]))
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models.bert import BertConfig, TransformerEmbeddings, TransformerEncoder
from fedbbpt_jax.models.minilm import read_safetensors
from fedbbpt_jax.models.torch_legacy import load_legacy_torch_state_dict

__all__ = [
    "RobertaForMaskedLM",
    "RobertaTokenizer",
    "WeightLoadError",
    "load_roberta_mlm",
    "read_state_dict",
    "roberta_config",
    "roberta_variables_from_state_dict",
    "verbalizer_logits",
]

ROBERTA_MASK_ID = 50264


class WeightLoadError(ValueError):
    """A checkpoint tensor is missing or has the wrong shape (the message names it)."""


def roberta_config(hf: Mapping[str, Any]) -> BertConfig:
    """Builds the encoder config from a Hugging Face RoBERTa ``config.json`` dict."""
    pad = int(hf.get("pad_token_id", 1))
    return BertConfig(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 1),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-5),
        pad_token_id=pad,
        position_offset=pad + 1,
    )


class RobertaLMHead(nn.Module):
    """Dense -> GELU -> LayerNorm; the caller applies the tied decoder."""

    config: BertConfig

    @nn.compact
    def __call__(self, hidden: jnp.ndarray) -> jnp.ndarray:
        c = self.config
        x = nn.Dense(c.hidden_size, name="dense")(hidden)
        x = jax.nn.gelu(x, approximate=False)
        return nn.LayerNorm(epsilon=c.layer_norm_eps, name="layer_norm")(x)


class RobertaForMaskedLM(nn.Module):
    """RoBERTa encoder + LM head; returns vocabulary logits at ``<mask>``.

    Attributes:
        config: Encoder architecture (see ``roberta_config``).
        mask_token_id: Id of ``<mask>``; the first one in each row is scored.
    """

    config: BertConfig
    mask_token_id: int = ROBERTA_MASK_ID

    def setup(self) -> None:
        self.embeddings = TransformerEmbeddings(self.config, name="embeddings")
        self.encoder = TransformerEncoder(self.config, name="encoder")
        self.lm_head = RobertaLMHead(self.config, name="lm_head")
        self.lm_bias = self.param("lm_bias", nn.initializers.zeros, (self.config.vocab_size,))

    def __call__(
        self,
        input_ids: jnp.ndarray,
        attention_mask: jnp.ndarray,
        mask_positions: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Returns ``[B, vocab]`` logits at each row's mask position.

        Args:
            input_ids: ``[B, L]`` int ids ``<s> ... </s> <pad>...``.
            attention_mask: ``[B, L]``, 1 on real tokens.
            mask_positions: ``[B]`` positions to score; default the first
                ``mask_token_id`` of each row (position 0 if a row has none).
        """
        if mask_positions is None:
            mask_positions = jnp.argmax(input_ids == self.mask_token_id, axis=-1)
        hidden = self.encoder(self.embeddings(input_ids), attention_mask)
        at_mask = jnp.take_along_axis(hidden, mask_positions[:, None, None], axis=1)[:, 0]
        x = self.lm_head(at_mask)
        return self.embeddings.word_embeddings.attend(x) + self.lm_bias


def verbalizer_logits(logits: jnp.ndarray, verbalizer_ids: Sequence[int]) -> jnp.ndarray:
    """Restricts ``[..., vocab]`` mask logits to the verbalizer tokens ``[..., C]``."""
    return jnp.take(logits, jnp.asarray(verbalizer_ids, jnp.int32), axis=-1)


def _name_map(config: BertConfig) -> list[tuple[tuple[str, ...], str, bool]]:
    """``(flax path, HF name, transpose)`` for every parameter of the model."""
    entries: list[tuple[tuple[str, ...], str, bool]] = []

    def dense(path: tuple[str, ...], hf: str) -> None:
        entries.append((path + ("kernel",), f"{hf}.weight", True))
        entries.append((path + ("bias",), f"{hf}.bias", False))

    def norm(path: tuple[str, ...], hf: str) -> None:
        entries.append((path + ("scale",), f"{hf}.weight", False))
        entries.append((path + ("bias",), f"{hf}.bias", False))

    e = "roberta.embeddings"
    for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        entries.append((("embeddings", table, "embedding"), f"{e}.{table}.weight", False))
    norm(("embeddings", "layer_norm"), f"{e}.LayerNorm")
    for i in range(config.num_layers):
        p, f = f"roberta.encoder.layer.{i}", ("encoder", f"layer_{i}")
        for name in ("query", "key", "value"):
            dense(f + ("attention", name), f"{p}.attention.self.{name}")
        dense(f + ("attention_output",), f"{p}.attention.output.dense")
        norm(f + ("attention_layer_norm",), f"{p}.attention.output.LayerNorm")
        dense(f + ("intermediate",), f"{p}.intermediate.dense")
        dense(f + ("output",), f"{p}.output.dense")
        norm(f + ("output_layer_norm",), f"{p}.output.LayerNorm")
    dense(("lm_head", "dense"), "lm_head.dense")
    norm(("lm_head", "layer_norm"), "lm_head.layer_norm")
    entries.append((("lm_bias",), "lm_head.bias", False))
    return entries


def _expected_shapes(config: BertConfig) -> dict[str, Any]:
    ids = jnp.zeros((1, 4), jnp.int32)
    model = RobertaForMaskedLM(config)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), ids, ids))["params"]


def roberta_variables_from_state_dict(
    state_dict: Mapping[str, np.ndarray], config: BertConfig
) -> dict[str, Any]:
    """Maps Hugging Face ``RobertaForMaskedLM`` tensors to ``RobertaForMaskedLM`` variables.

    ``lm_head.decoder.weight`` (if present) must equal the word embeddings (tied);
    ``lm_head.decoder.bias`` duplicates ``lm_head.bias``. Other tensors (pooler,
    ``position_ids``) are ignored.

    Raises:
        WeightLoadError: naming the first missing or mis-shaped tensor.
    """
    expected = _expected_shapes(config)
    params: dict[str, Any] = {}
    for path, hf, transpose in _name_map(config):
        if hf not in state_dict:
            raise WeightLoadError(f"checkpoint tensor {hf!r} is missing "
                                  f"(needed for {'/'.join(path)})")
        value = np.asarray(state_dict[hf], np.float32)
        value = np.ascontiguousarray(value.T) if transpose else value
        want = expected
        for part in path:
            want = want[part]
        if tuple(value.shape) != tuple(want.shape):
            shape = tuple(value.T.shape) if transpose else tuple(value.shape)
            want_hf = tuple(want.shape[::-1]) if transpose else tuple(want.shape)
            raise WeightLoadError(f"checkpoint tensor {hf!r} has shape {shape}, expected {want_hf}")
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    decoder = state_dict.get("lm_head.decoder.weight")
    if decoder is not None and not np.array_equal(
            np.asarray(decoder, np.float32), params["embeddings"]["word_embeddings"]["embedding"]):
        raise WeightLoadError("checkpoint tensor 'lm_head.decoder.weight' is not tied to "
                              "'roberta.embeddings.word_embeddings.weight' (unsupported)")
    return {"params": params}


def read_state_dict(model_dir: str) -> dict[str, np.ndarray]:
    """Reads ``model.safetensors`` or a legacy ``pytorch_model.bin`` from ``model_dir``."""
    for name, reader in (("model.safetensors", read_safetensors),
                         ("pytorch_model.bin", load_legacy_torch_state_dict)):
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return reader(path)
    raise FileNotFoundError(f"{model_dir}: neither model.safetensors nor pytorch_model.bin found")


def load_roberta_mlm(
    model_dir: str, mask_token_id: int | None = None
) -> tuple[RobertaForMaskedLM, dict[str, Any]]:
    """Loads a RoBERTa masked LM from local files as ``(module, variables)``.

    Args:
        model_dir: Folder with ``config.json`` and the weights (e.g. roberta-large).
        mask_token_id: Id of ``<mask>``; default ``vocab_size - 1`` (50264 for
            roberta-base/large, whose ``<mask>`` is the last id).
    """
    with open(os.path.join(model_dir, "config.json")) as f:
        config = roberta_config(json.load(f))
    variables = roberta_variables_from_state_dict(read_state_dict(model_dir), config)
    mask_id = config.vocab_size - 1 if mask_token_id is None else int(mask_token_id)
    return RobertaForMaskedLM(config, mask_token_id=mask_id), variables


_FIELD = re.compile(r"\{(s[12])\}")


class RobertaTokenizer:
    """Byte-level BPE tokenizer from a local ``tokenizer.json`` with fixed padded length.

    Attributes:
        max_length: Padded length of every row.
        bos_id, eos_id, pad_id, mask_id: Special-token ids.
    """

    def __init__(self, tokenizer_file: str, max_length: int):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(tokenizer_file)
        self._tok.no_truncation()
        self._tok.no_padding()
        self.max_length = int(max_length)
        ids = {t: self._tok.token_to_id(t) for t in ("<s>", "</s>", "<pad>", "<mask>")}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"{tokenizer_file}: special tokens {missing} are not in the "
                             "vocabulary")
        self.bos_id, self.eos_id = ids["<s>"], ids["</s>"]
        self.pad_id, self.mask_id = ids["<pad>"], ids["<mask>"]

    def pieces(self, text: str) -> list[int]:
        """BPE ids of ``text`` without special tokens."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def verbalizer_ids(self, words: Sequence[str]) -> list[int]:
        """Single-token ids of ``" " + word`` (as after ``<mask>``); raises if multi-token."""
        out = []
        for word in words:
            ids = self.pieces(" " + word)
            if len(ids) != 1:
                raise ValueError(f"verbalizer {word!r} is {len(ids)} tokens, expected 1")
            out.append(ids[0])
        return out

    def _encode_one(self, template: str, texts: Sequence[str], prompt: Sequence[int]) -> list[int]:
        parts = _FIELD.split(template)  # literal, field, literal, field, ...
        chunks = [self.pieces(p) if i % 2 == 0 else self.pieces(texts[int(p[1]) - 1])
                  for i, p in enumerate(parts)]
        fields = list(range(1, len(chunks), 2))
        fixed = sum(len(chunks[i]) for i in range(0, len(chunks), 2))
        budget = self.max_length - 2 - len(prompt) - fixed
        if budget < 0:
            raise ValueError(f"max_length={self.max_length} is too short for the template and "
                             "prompt")
        while sum(len(chunks[i]) for i in fields) > budget:  # longest-first truncation
            longest = max(fields, key=lambda i: len(chunks[i]))
            chunks[longest] = chunks[longest][:-1]
        body = [t for c in chunks for t in c]
        if self.mask_id not in body:
            raise ValueError(f"template {template!r} has no <mask> token")
        return [self.bos_id, *prompt, *body, self.eos_id]

    def encode_template(
        self,
        template: str,
        examples: Sequence[Sequence[str]],
        prompt_ids: Sequence[int] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(ids, mask)`` int32 ``[N, max_length]`` for BDPL inputs.

        Each row is ``<s> prompt template(texts) </s> <pad>...``; the texts
        (``{s1}``, ``{s2}``) are truncated longest-first so ``<mask>`` survives.
        """
        ids = np.full((len(examples), self.max_length), self.pad_id, np.int32)
        mask = np.zeros_like(ids)
        for row, texts in enumerate(examples):
            tokens = self._encode_one(template, texts, list(prompt_ids))
            ids[row, :len(tokens)] = tokens
            mask[row, :len(tokens)] = 1
        return ids, mask
