"""A tiny GPT-2 folder made in the test (random weights, Hugging Face names) and a
word-level ``tokenizer.json`` for it (or a given tokenizer): the real loaders run on it
(no GPT-2 weights ship offline)."""

import json

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers

from tests.helpers.glue_roberta import write_safetensors

WORDS = ["<|endoftext|>", "user:", "assistant:", "system:", "the", "a", "word", "list",
         "sort", "first", "letter", "of", "each", "input", "output", "answer", "is", "and",
         "cat", "dog", "apple", "banana", "red", "blue", "one", "two", "three", "four",
         "five", "plus", "minus", "say", "write", "instruction", "to", "in", "order",
         "count", "reverse", "copy", "upper", "lower", "case", "letters", "numbers",
         "sum", "then", "for", "it", "<unk>"]
CONFIG = {"vocab_size": len(WORDS), "n_positions": 96, "n_embd": 16, "n_layer": 2,
          "n_head": 2, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}


def tiny_state_dict(config=CONFIG, seed=0):
  v, p, d, layers = (config[k] for k in ("vocab_size", "n_positions", "n_embd", "n_layer"))
  rng = np.random.default_rng(seed)
  r = lambda *s: (0.3 * rng.standard_normal(s)).astype(np.float32)
  sd = {"transformer.wte.weight": r(v, d), "transformer.wpe.weight": r(p, d),
        "transformer.ln_f.weight": 1 + r(d), "transformer.ln_f.bias": r(d)}
  for i in range(layers):
    q = f"transformer.h.{i}."
    sd.update({q + "ln_1.weight": 1 + r(d), q + "ln_1.bias": r(d),
               q + "attn.c_attn.weight": r(d, 3 * d), q + "attn.c_attn.bias": r(3 * d),
               q + "attn.c_proj.weight": r(d, d), q + "attn.c_proj.bias": r(d),
               q + "ln_2.weight": 1 + r(d), q + "ln_2.bias": r(d),
               q + "mlp.c_fc.weight": r(d, 4 * d), q + "mlp.c_fc.bias": r(4 * d),
               q + "mlp.c_proj.weight": r(4 * d, d), q + "mlp.c_proj.bias": r(d)})
  sd["lm_head.weight"] = sd["transformer.wte.weight"]
  return sd


def write_tiny_gpt2(path, config=CONFIG, seed=0, tokenizer=None):
  """``config.json``, ``model.safetensors`` and ``tokenizer.json`` in ``path``: the
  word-level tokenizer over ``WORDS``, or ``tokenizer`` (``config['vocab_size']`` must be
  its size)."""
  path.mkdir(parents=True, exist_ok=True)
  with open(path / "config.json", "w") as f:
    json.dump(config, f)
  write_safetensors(str(path / "model.safetensors"), tiny_state_dict(config, seed))
  tok = tokenizer
  if tok is None:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok.save(str(path / "tokenizer.json"))
  return str(path)
