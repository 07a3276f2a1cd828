"""The token-count lower bound read from a tokenizer's definition: it holds on adversarial
texts for the tokenizers it bounds (byte-level BPE, with dropped bytes, and a BPE with an
unknown token behind a growing normalizer), it is reached (no smaller ``L`` would do), and
each tokenizer it refuses to bound really has short encodings of long texts."""

import math
import random

import pytest
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

from fedbbpt_jax.models.token_bytes import TokenLowerBound, token_lower_bound, why_unbounded
from tests.helpers.tiny_llama import tiny_tokenizer

PIECES = [" ", "  ", "\n", "\t", "a", "b", "ab", "the", " the", "é", "漢", "😀", "7", "42",
          "\x00", "\x04", "\u0301", "\u212a", "<|im_start|>", "<|endoftext|>", "▁", "Ġ"]


def fuzz_texts(seed, count=300):
  rng = random.Random(seed)
  return ["".join(rng.choice(PIECES) * rng.randint(1, 40) for _ in range(rng.randint(1, 12)))
          for _ in range(count)]


def assert_bound_holds(tokenizer, bound, seed):
  for text in fuzz_texts(seed):
    assert len(tokenizer.encode(text).ids) >= bound.min_tokens(text), text


def byte_level_characters(text):
  """The characters ByteLevel gives the UTF-8 bytes of ``text``, one per byte."""
  level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
  return "".join(piece for piece, _ in level.pre_tokenize_str(text))


def test_a_byte_level_bpe_is_bounded_by_its_longest_token_and_the_bound_is_reached():
  tok = tiny_tokenizer()
  bound = token_lower_bound(tok)
  assert bound == TokenLowerBound(max_bytes=13, dropped_bytes=b"")  # '<|endoftext|>'
  assert why_unbounded(tok) is None
  assert_bound_holds(tok, bound, seed=0)
  # Reached: 13 bytes in one token (a smaller L would undercount this text).
  assert len(tok.encode("<|endoftext|>" * 5).ids) == bound.min_tokens("<|endoftext|>" * 5) == 5


def test_bytes_missing_from_a_byte_level_vocabulary_are_dropped_and_not_counted():
  # No '\x04' and no 0xc3 (the lead byte of 'é'): such a BPE without an unknown token drops
  # them (SmolLM2's vocabulary lacks 21 bytes, '\x04' among them).
  missing = byte_level_characters("\x04") + byte_level_characters("é")[0]
  vocab = [c for c in pre_tokenizers.ByteLevel.alphabet() if c not in missing]
  tok = Tokenizer(models.BPE({c: i for i, c in enumerate(vocab)}, []))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  bound = token_lower_bound(tok)
  assert bound == TokenLowerBound(max_bytes=1, dropped_bytes=b"\x04\xc3")
  assert tok.encode("\x04" * 50).ids == [] and bound.min_tokens("\x04" * 50) == 0
  assert len(tok.encode("é").ids) == bound.min_tokens("é") == 1   # only 0xa9 is kept
  assert_bound_holds(tok, bound, seed=1)


def test_a_bpe_with_an_unknown_token_behind_a_growing_normalizer_is_bounded():
  # Llama-2 style: spaces become '▁' (1 byte -> 3), a '▁' is prepended; unknown -> '<unk>'.
  vocab = {"<unk>": 0, "▁": 1, "a": 2, "b": 3, "▁a": 4, "ab": 5, "▁ab": 6}
  tok = Tokenizer(models.BPE(vocab, [("▁", "a"), ("a", "b"), ("▁a", "b")], unk_token="<unk>"))
  tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                         normalizers.Replace(" ", "▁")])
  bound = token_lower_bound(tok)
  assert bound == TokenLowerBound(max_bytes=5)   # '<unk>' and '▁ab' are 5 bytes long
  assert_bound_holds(tok, bound, seed=2)
  assert tok.encode("😀").ids == [1, 0]          # one unknown token per unknown character


def naive_bound(tokenizer):
  """``L`` = the longest token or added token in UTF-8 bytes (what the refusals refute)."""
  return max(len(t.encode()) for t in tokenizer.get_vocab(with_added_tokens=True))


def unk_bpe(**kwargs):
  return Tokenizer(models.BPE({"a": 0, "b": 1, "<unk>": 2}, [], unk_token="<unk>", **kwargs))


def word_level():
  tok = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  return tok


def fused():
  return unk_bpe(fuse_unk=True)


def whitespace():
  tok = unk_bpe()
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  return tok


def lowercase():
  tok = Tokenizer(models.BPE({"k": 0, "kk": 1, "<unk>": 2}, [("k", "k")], unk_token="<unk>"))
  tok.normalizer = normalizers.Lowercase()
  return tok


def stripping():
  tok = unk_bpe()
  tok.add_tokens([AddedToken("<mask>", lstrip=True)])
  return tok


def no_unknown():
  return Tokenizer(models.BPE({"a": 0, "b": 1}, []))


def truncating():
  tok = unk_bpe()
  tok.enable_truncation(4)
  return tok


@pytest.mark.parametrize("make,text,reason", [
    (word_level, "x" * 1000, "its word-level model maps any unknown word to one token"),
    (fused, "x" * 100, "its BPE model fuses a run of unknown characters into one token"),
    (whitespace, "a" + " " * 50 + "b", "its Whitespace pre-tokenizer drops the text it splits on"),
    (lowercase, "\u212a" * 4, "its Lowercase normalizer may shrink the text"),  # Kelvin signs
    (stripping, "a" + " " * 50 + "<mask>", "its added token '<mask>' swallows the whitespace "
                                            "around it"),
    (no_unknown, "a" + "x" * 50 + "b", "its BPE model has neither an unknown token nor a "
                                       "complete byte fallback (characters outside the "
                                       "vocabulary are dropped)"),
    (truncating, "a" * 50, "it truncates what it encodes"),
])
def test_tokenizers_without_a_provable_bound_are_refused_for_a_reason(make, text, reason):
  tok = make()
  assert token_lower_bound(tok) is None and why_unbounded(tok) == reason
  # The reason is real: the naive bound (longest token) overcounts this text's tokens.
  assert len(tok.encode(text).ids) < math.ceil(len(text.encode()) / naive_bound(tok))
