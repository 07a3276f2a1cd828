"""CLIP's tokenizer from a Hugging Face ``tokenizer.json`` (the ``tokenizers`` library).

The file carries all of CLIP's text handling: NFC normalisation, whitespace runs to one
space, lower-casing, the word-splitting regex, byte-level BPE with ``</w>`` word ends, and
``<|startoftext|> ... <|endoftext|>`` around every row. This wrapper adds what a
``CLIPTokenizerFast`` call with ``padding='max_length', truncation=True,
max_length=77`` adds: rows truncated to ``max_length`` (the end token kept) and padded
with the folder's pad token (``<|endoftext|>`` for OpenAI's checkpoints, ``!`` for
LAION's), so every batch has one shape (one compilation).

Example:
    >>> tokenizer = CLIPTokenizer.from_folder("/models/clip-vit-base-patch16")
    >>> ids, mask = tokenizer(["a photo of a cat."])            # int32 [1, 77] each
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CLIPTokenizer", "DEFAULT_PAD_TOKEN"]

DEFAULT_PAD_TOKEN = "<|endoftext|>"  # transformers' CLIPTokenizer default
_SIDES = ("right", "left")


def _token_text(value: Any) -> str | None:
  """A special token as ``tokenizer_config.json`` / ``special_tokens_map.json`` write it:
  a string, or an ``AddedToken`` dict with ``content``."""
  if isinstance(value, dict):
    return value.get("content")
  return value


class CLIPTokenizer:
  """``texts -> (ids, mask)``, int32 ``[N, max_length]``, like ``CLIPTokenizerFast``.

  Attributes:
    max_length: Length of every row.
    pad_token, pad_id: The padding token and its id.
  """

  def __init__(self, tokenizer_file: str, max_length: int = 77,
               pad_token: str = DEFAULT_PAD_TOKEN, padding_side: str = "right"):
    from tokenizers import Tokenizer

    if not os.path.isfile(tokenizer_file):
      raise FileNotFoundError(f"{tokenizer_file}: no such tokenizer file")
    if max_length < 2:
      raise ValueError(f"max_length must be >= 2 (start and end tokens), got {max_length}")
    if padding_side not in _SIDES:
      raise ValueError(f"padding_side={padding_side!r} is not one of {list(_SIDES)}")
    self.max_length = int(max_length)
    self._tok = Tokenizer.from_file(tokenizer_file)
    self.pad_token = pad_token
    self.pad_id = self._tok.token_to_id(pad_token)
    if self.pad_id is None:
      raise ValueError(f"{tokenizer_file}: the pad token {pad_token!r} is not in the vocabulary")
    self._tok.enable_truncation(self.max_length)
    self._tok.enable_padding(direction=padding_side, length=self.max_length, pad_id=self.pad_id,
                             pad_token=pad_token)

  @classmethod
  def from_folder(cls, folder: str, max_length: int = 77) -> "CLIPTokenizer":
    """The tokenizer of a Hugging Face folder: ``tokenizer.json``, with the pad token and
    padding side of ``special_tokens_map.json`` / ``tokenizer_config.json`` if present."""
    pad_token, side = DEFAULT_PAD_TOKEN, "right"
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the latter wins
      path = os.path.join(folder, name)
      if os.path.isfile(path):
        with open(path) as f:
          settings = json.load(f)
        pad_token = _token_text(settings.get("pad_token")) or pad_token
        side = settings.get("padding_side", side)
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{folder}: no tokenizer.json (CLIP's tokenizer is read from "
                              "a Hugging Face tokenizer.json)")
    return cls(path, max_length, pad_token, side)

  def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(texts, str):
      raise TypeError("pass a list of texts, not one string")
    encodings = self._tok.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in encodings], np.int32).reshape(-1, self.max_length)
    mask = np.asarray([e.attention_mask for e in encodings], np.int32)
    return ids, mask.reshape(-1, self.max_length)

  def token_to_id(self, token: str) -> int | None:
    return self._tok.token_to_id(token)
