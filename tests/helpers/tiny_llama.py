"""A tiny random Llama made in the test, written twice with the same weights: as a Hugging
Face folder (``config.json``, ``model.safetensors``, ``tokenizer.json``, optionally
``tokenizer_config.json`` with a ChatML template) and as a GGUF file the way llama.cpp's
converter writes one (query/key rows permuted for adjacent-pair rotary, tokenizer in the
metadata, optionally the matrices quantized ``Q8_0``). The real loaders run on both.

The tokenizer is a small byte-level BPE trained here on a few sentences (all 256 byte
symbols, so any text encodes), with ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` as
ids 0, 1, 2. It is trained WITHOUT splitting digits (so digit merges such as ``12`` exist)
and used WITH SmolLM2's individual-digit pre-tokenizer, which the GGUF file names as
``tokenizer.ggml.pre = 'smollm'``.
"""

import json
import os

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tests.helpers.glue_roberta import write_safetensors

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}"
          "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
          "{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CORPUS = ["the cat sat on the mat", "the dog ate the apple", "hello world, hello there",
          "what is the capital of france? paris is the capital", "12345 and 2024 and 123",
          "user: sort the words; assistant: sorted", "one two three four five 12 34 45",
          "Hello World! The answer is 42."] * 4


def tiny_tokenizer(vocab_size=300) -> Tokenizer:
  """The trained byte-level BPE with the digit-splitting pre-tokenizer."""
  tok = Tokenizer(models.BPE(fuse_unk=False))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
  return tok


def vocab_and_merges(tok: Tokenizer) -> tuple[list[str], list[str]]:
  """Tokens by id and merges as ``'a b'`` strings (GGUF's form)."""
  model = json.loads(tok.to_str())["model"]
  tokens = [None] * len(model["vocab"])
  for t, i in model["vocab"].items():
    tokens[i] = t
  merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
  return tokens, merges


TOKENS, MERGES = vocab_and_merges(tiny_tokenizer())
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "vocab_size": len(TOKENS), "hidden_size": 32, "intermediate_size": 64,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128,
          "tie_word_embeddings": True, "hidden_act": "silu"}


def tiny_state_dict(config=CONFIG, seed=0) -> dict:
  """Random ``LlamaForCausalLM`` tensors, Hugging Face names, torch layout, tied embeddings."""
  d, f = config["hidden_size"], config["intermediate_size"]
  hd = d // config["num_attention_heads"]
  q_out, kv_out = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
  rng = np.random.default_rng(seed)
  r = lambda *s, scale=0.3: (scale * rng.standard_normal(s)).astype(np.float32)
  sd = {"model.embed_tokens.weight": r(config["vocab_size"], d, scale=1.0),
        "model.norm.weight": 1 + r(d, scale=0.1)}
  for i in range(config["num_hidden_layers"]):
    p = f"model.layers.{i}."
    sd.update({p + "input_layernorm.weight": 1 + r(d, scale=0.1),
               p + "self_attn.q_proj.weight": r(q_out, d),
               p + "self_attn.k_proj.weight": r(kv_out, d),
               p + "self_attn.v_proj.weight": r(kv_out, d),
               p + "self_attn.o_proj.weight": r(d, q_out),
               p + "post_attention_layernorm.weight": 1 + r(d, scale=0.1),
               p + "mlp.gate_proj.weight": r(f, d),
               p + "mlp.up_proj.weight": r(f, d),
               p + "mlp.down_proj.weight": r(d, f)})
  return sd


def permute_rotary_rows(w: np.ndarray, heads: int) -> np.ndarray:
  """llama.cpp's converter: per head, rows ``(half, pair)`` -> ``(pair, half)``, so that
  rotate_half's pair ``(i, i + head_dim/2)`` becomes the adjacent pair ``(2i, 2i+1)``."""
  out, d_in = w.shape
  return w.reshape(heads, 2, out // heads // 2, d_in).swapaxes(1, 2).reshape(out, d_in)


def gguf_tensors(sd: dict, config=CONFIG) -> dict:
  """The GGUF names and (permuted) torch-layout tensors of a Hugging Face state dict."""
  out = {"token_embd.weight": sd["model.embed_tokens.weight"],
         "output_norm.weight": sd["model.norm.weight"]}
  names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
           "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
  for i in range(config["num_hidden_layers"]):
    for hf, gg in names.items():
      w = sd[f"model.layers.{i}.{hf}.weight"]
      if gg == "attn_q":
        w = permute_rotary_rows(w, config["num_attention_heads"])
      elif gg == "attn_k":
        w = permute_rotary_rows(w, config["num_key_value_heads"])
      out[f"blk.{i}.{gg}.weight"] = w
  return out


def write_llama_folder(path, config=CONFIG, seed=0, chat_template=CHATML) -> str:
  """``config.json``, ``model.safetensors``, ``tokenizer.json`` and (with a template)
  ``tokenizer_config.json`` in ``path``; returns the folder as a string."""
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  write_safetensors(os.path.join(path, "model.safetensors"), tiny_state_dict(config, seed))
  tiny_tokenizer().save(os.path.join(path, "tokenizer.json"))
  if chat_template is not None:
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
      json.dump({"chat_template": chat_template, "eos_token": "<|im_end|>",
                 "bos_token": "<|im_start|>"}, f)
  return str(path)


def write_llama_gguf(path, config=CONFIG, seed=0, quantized=False, chat_template=CHATML,
                     pre="smollm", arch="llama") -> str:
  """The same model as one GGUF file at ``path`` (F32, or ``Q8_0`` matrices with
  ``quantized``; norms stay F32 as llama.cpp keeps them); returns the path."""
  import gguf  # pylint: disable=import-outside-toplevel

  w = gguf.GGUFWriter(str(path), arch)
  w.add_name("tiny-llama")
  w.add_context_length(config["max_position_embeddings"])
  w.add_embedding_length(config["hidden_size"])
  w.add_feed_forward_length(config["intermediate_size"])
  w.add_block_count(config["num_hidden_layers"])
  w.add_head_count(config["num_attention_heads"])
  w.add_head_count_kv(config["num_key_value_heads"])
  w.add_layer_norm_rms_eps(config["rms_norm_eps"])
  w.add_rope_freq_base(config["rope_theta"])
  w.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
  w.add_vocab_size(config["vocab_size"])
  w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quantized else gguf.LlamaFileType.ALL_F32)
  w.add_tokenizer_model("gpt2")
  w.add_tokenizer_pre(pre)
  w.add_token_list(TOKENS)
  w.add_token_types([3 if t in SPECIAL else 1 for t in TOKENS])
  w.add_token_merges(MERGES)
  w.add_bos_token_id(TOKENS.index("<|im_start|>"))
  w.add_eos_token_id(TOKENS.index("<|im_end|>"))
  if chat_template is not None:
    w.add_chat_template(chat_template)
  for name, t in gguf_tensors(tiny_state_dict(config, seed), config).items():
    t = np.ascontiguousarray(t, np.float32)
    if quantized and t.ndim == 2:
      q8 = gguf.GGMLQuantizationType.Q8_0
      w.add_tensor(name, gguf.quants.quantize(t, q8), raw_dtype=q8)
    else:
      w.add_tensor(name, t)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return str(path)
