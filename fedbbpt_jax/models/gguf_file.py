"""Reading a GGUF model file (llama.cpp's format) offline: metadata, dequantized tensors,
and the byte-level BPE tokenizer stored in its metadata.

The file is parsed by the ``gguf`` package (maintained with llama.cpp); quantized
tensors (``Q4_1``, ``Q8_0``, ...) are dequantized to float32 with its ``quants`` module.
Tensors come back in PyTorch layout (``[out, in]`` for a projection): GGUF lists
dimensions fastest-first, so the stored shape is reversed.

The tokenizer (``tokenizer.ggml.model == 'gpt2'``: byte-level BPE from
``tokenizer.ggml.tokens`` and ``tokenizer.ggml.merges``) is rebuilt with the
``tokenizers`` library; control tokens (``token_type == 3``, e.g. ``<|im_start|>``)
become special tokens that are never split. The pre-tokenizer follows
``tokenizer.ggml.pre``: ``smollm`` (and other Llama-3-era vocabularies in
``DIGIT_SPLITTING``) split every digit on its own before the GPT-2 byte-level regex.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

DIGIT_SPLITTING = ("smollm",)
CONTROL = 3  # llama.cpp's token type of a control (special) token


def _import_gguf():
  try:
    import gguf  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading .gguf files needs the 'gguf' package (in setup.py's "
                      "install_requires; run `make venv`)") from e
  return gguf


def _value(field: Any) -> Any:
  return field.contents()


def read_gguf(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """``(metadata, tensors)`` of the GGUF file at ``path``; tensors float32, PyTorch layout.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a GGUF file (names the path and the parser's complaint).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such GGUF file")
  gguf = _import_gguf()
  try:
    reader = gguf.GGUFReader(path)
  except (ValueError, OSError) as e:
    raise ValueError(f"{path} is not a readable GGUF file: {e}") from e
  meta = {}
  for key, field in reader.fields.items():
    if key.startswith("GGUF."):
      continue
    meta[key] = _value(field)
  tensors = {}
  for t in reader.tensors:
    shape = tuple(int(s) for s in reversed(t.shape))
    data = gguf.quants.dequantize(t.data, t.tensor_type)
    tensors[t.name] = np.asarray(data, np.float32).reshape(shape)
  return meta, tensors


def gguf_tokenizer(meta: dict[str, Any]) -> Tokenizer:
  """The byte-level BPE tokenizer described by a GGUF file's metadata.

  Raises:
    ValueError: a tokenizer model other than byte-level BPE (``'gpt2'``), or a field
      missing (named).
  """
  kind = meta.get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise ValueError(f"tokenizer.ggml.model={kind!r}: only byte-level BPE ('gpt2') is built")
  for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
    if key not in meta:
      raise ValueError(f"the GGUF metadata lacks {key}")
  tokens = list(meta["tokenizer.ggml.tokens"])
  merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
  vocab = {t: i for i, t in enumerate(tokens)}
  tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False))
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if meta.get("tokenizer.ggml.pre") in DIGIT_SPLITTING:
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
  else:
    tokenizer.pre_tokenizer = byte_level
  tokenizer.decoder = decoders.ByteLevel()
  types = meta.get("tokenizer.ggml.token_type")
  if types is not None:
    tokenizer.add_special_tokens([tokens[i] for i, k in enumerate(types) if int(k) == CONTROL])
  return tokenizer
