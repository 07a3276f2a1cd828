"""A lower bound on a text's token count, read from the tokenizer's definition.

If every token of a tokenizer covers at most ``L`` bytes of the UTF-8 text it encodes,
a text of ``B`` bytes has at least ``ceil(B / L)`` tokens: a service can refuse a prompt
that cannot fit its model's context without tokenizing it
(``token_lower_bound(tokenizer).min_tokens(text)``). The bound holds when

* nothing shrinks the text before the model splits it: no normalizer, or only
  ``Prepend`` and ``Replace`` of a fixed string by one at least as long (Unicode
  normalization and lowercasing can shrink text: the Kelvin sign, 3 bytes, lowercases
  to ``k``, 1 byte);
* nothing drops text: no pre-tokenizer that removes what it splits on (``Whitespace``,
  ``WhitespaceSplit``, ``BertPreTokenizer``, ``CharDelimiterSplit``, ``Split`` or
  ``Punctuation`` with ``behavior='removed'``), no truncation, and a model that gives
  every character a token: an unknown token, a complete byte fallback, or a byte-level
  vocabulary. A byte-level BPE without an unknown token silently drops the bytes its
  vocabulary lacks (SmolLM2's lacks 21, among them the control characters ``\x04`` and
  ``\x06``: a text of them has no token at all); those bytes are not counted in ``B``;
* every token covers a bounded span: a BPE model (its token strings contain their
  spans; an unknown character becomes one unknown token, never a fused run), added
  tokens without ``lstrip``/``rstrip`` (those swallow any amount of whitespace).

``L`` is then the longest of: the vocabulary's tokens (in characters after a
``ByteLevel`` pre-tokenizer, where each character stands for one byte; in UTF-8 bytes
otherwise), the added tokens' contents (UTF-8 bytes), and 4 bytes (one character) for
an unknown token. A word-level, WordPiece or Unigram model can map an unknown word or
run of any length to one token: no bound (``token_lower_bound`` answers None and
``why_unbounded`` says why).
"""

from __future__ import annotations

import dataclasses
import functools
import json

from tokenizers import Tokenizer, pre_tokenizers

_SHRINK_FREE_NORMALIZERS = ("Prepend", "Replace", "Sequence")
_DROPPING_PRE_TOKENIZERS = ("Whitespace", "WhitespaceSplit", "BertPreTokenizer",
                            "CharDelimiterSplit")
_SPLITTING_PRE_TOKENIZERS = ("ByteLevel", "Digits", "Metaspace", "UnicodeScripts", "Split",
                             "Punctuation", "Sequence")
UNKNOWN_CHARACTER_BYTES = 4  # one character, the most an unfused unknown token covers


def _normalizer_problem(normalizer: dict | None) -> str | None:
  if normalizer is None:
    return None
  kind = normalizer.get("type")
  if kind not in _SHRINK_FREE_NORMALIZERS:
    return f"its {kind} normalizer may shrink the text"
  if kind == "Sequence":
    return next(filter(None, map(_normalizer_problem, normalizer["normalizers"])), None)
  if kind == "Replace":
    pattern = normalizer.get("pattern", {})
    if "String" not in pattern:
      return "its Replace normalizer replaces a regular expression (it may shrink the text)"
    if len(normalizer["content"].encode()) < len(pattern["String"].encode()):
      return (f"its Replace normalizer shortens {pattern['String']!r} to "
              f"{normalizer['content']!r}")
  return None


def _pre_tokenizer_problem(pre_tokenizer: dict | None) -> str | None:
  if pre_tokenizer is None:
    return None
  kind = pre_tokenizer.get("type")
  if kind in _DROPPING_PRE_TOKENIZERS:
    return f"its {kind} pre-tokenizer drops the text it splits on"
  if kind not in _SPLITTING_PRE_TOKENIZERS:
    return f"its {kind} pre-tokenizer is not known to keep every byte"
  if kind == "Sequence":
    return next(filter(None, map(_pre_tokenizer_problem, pre_tokenizer["pretokenizers"])), None)
  if str(pre_tokenizer.get("behavior", "")).lower() == "removed":
    return f"its {kind} pre-tokenizer removes what it splits on"
  return None


def _has_byte_level(pre_tokenizer: dict | None) -> bool:
  if pre_tokenizer is None:
    return False
  if pre_tokenizer.get("type") == "Sequence":
    return any(map(_has_byte_level, pre_tokenizer["pretokenizers"]))
  return pre_tokenizer.get("type") == "ByteLevel"


@functools.cache
def _byte_of_character() -> dict[str, int]:
  """The ``ByteLevel`` alphabet: the character standing for each byte (GPT-2's table)."""
  printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
               + list(range(ord("®"), ord("ÿ") + 1)))
  others = [b for b in range(256) if b not in printable]
  table = {chr(b): b for b in printable}
  table.update({chr(256 + i): b for i, b in enumerate(others)})
  assert sorted(table) == sorted(pre_tokenizers.ByteLevel.alphabet())
  return table


@dataclasses.dataclass(frozen=True)
class TokenLowerBound:
  """What a tokenizer's definition proves about its token counts (the module docstring).

  Attributes:
    max_bytes: ``L``, the most bytes of UTF-8 text one token covers.
    dropped_bytes: byte values the tokenizer drops (covered by no token; not counted).
  """

  max_bytes: int
  dropped_bytes: bytes = b""

  def min_tokens(self, text: str) -> int:
    """A lower bound on the number of tokens of ``text`` (a str encodable as UTF-8)."""
    data = text.encode("utf-8")
    counted = len(data.translate(None, self.dropped_bytes)) if self.dropped_bytes else len(data)
    return -(-counted // self.max_bytes)


def _bpe_bound(model: dict, byte_level: bool) -> TokenLowerBound | str:
  vocab = model["vocab"]
  unknown = model.get("unk_token")
  if unknown is not None and model.get("fuse_unk"):
    return "its BPE model fuses a run of unknown characters into one token"
  if byte_level:
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
      return "its byte-level BPE model adds subword prefixes or suffixes"
    dropped = b""
    if unknown is None:  # a byte whose character is not in the vocabulary is dropped
      dropped = bytes(sorted(b for c, b in _byte_of_character().items() if c not in vocab))
    # One character per byte; an unknown token covers one character, one byte.
    return TokenLowerBound(max(map(len, vocab)), dropped)
  byte_tokens = all(f"<0x{b:02X}>" in vocab for b in range(256))
  if unknown is None and not (model.get("byte_fallback") and byte_tokens):
    return ("its BPE model has neither an unknown token nor a complete byte fallback "
            "(characters outside the vocabulary are dropped)")
  longest = max(len(token.encode()) for token in vocab)
  return TokenLowerBound(max(longest, UNKNOWN_CHARACTER_BYTES))


def _analyse(tokenizer: Tokenizer) -> TokenLowerBound | str:
  spec = json.loads(tokenizer.to_str())
  if spec.get("truncation") is not None:
    return "it truncates what it encodes"
  model = spec["model"]
  kind = model.get("type")
  if kind != "BPE":
    return {"WordLevel": "its word-level model maps any unknown word to one token",
            "WordPiece": "its WordPiece model maps an unknown or overlong word to one token",
            "Unigram": "its Unigram model may map a run of unknown characters to one token",
            }.get(kind, f"its {kind} model is not analysed")
  problem = _normalizer_problem(spec.get("normalizer")) or _pre_tokenizer_problem(
      spec.get("pre_tokenizer"))
  if problem:
    return problem
  bound = _bpe_bound(model, _has_byte_level(spec.get("pre_tokenizer")))
  if isinstance(bound, str):
    return bound
  added = spec.get("added_tokens") or []
  stripping = [t["content"] for t in added if t.get("lstrip") or t.get("rstrip")]
  if stripping:
    return f"its added token {stripping[0]!r} swallows the whitespace around it"
  longest = max([bound.max_bytes] + [len(t["content"].encode()) for t in added])
  return dataclasses.replace(bound, max_bytes=longest)


def token_lower_bound(tokenizer: Tokenizer) -> TokenLowerBound | None:
  """What ``tokenizer``'s definition proves about token counts (the module docstring),
  or None where no bound can be proved (``why_unbounded`` says why)."""
  bound = _analyse(tokenizer)
  return None if isinstance(bound, str) else bound


def why_unbounded(tokenizer: Tokenizer) -> str | None:
  """Why ``token_lower_bound`` is None for ``tokenizer`` (None when it is bounded)."""
  bound = _analyse(tokenizer)
  return bound if isinstance(bound, str) else None
