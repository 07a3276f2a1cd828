"""The Llama causal LM: the real loaders on a tiny random model written here twice (a Hugging
Face folder and a llama.cpp-style GGUF file with permuted query/key rows), checked against
an independent NumPy forward that uses llama.cpp's adjacent-pair rotary embedding on the
GGUF weights; left padding changes nothing; KV-cached greedy decoding equals a NumPy
recompute loop; both loaders give one model and one tokenizer; errors name their cause;
and the bundled SmolLM2-135M-Instruct answers a question."""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models import llama
from fedbbpt_jax.models.causal_lm import SMOLLM2, load_causal_lm
from fedbbpt_jax.models.gguf_file import gguf_tokenizer, read_gguf
from fedbbpt_jax.models.causal_lm import left_pad
from tests.helpers.tiny_llama import (CHATML, CONFIG, gguf_tensors, permute_rotary_rows,
                                      tiny_state_dict, write_llama_folder, write_llama_gguf)

H, KV, D = CONFIG["num_attention_heads"], CONFIG["num_key_value_heads"], CONFIG["hidden_size"]
HD = D // H
ROWS = [[5, 40, 17, 260, 9, 33, 71], [88, 3, 150], [12, 201, 7, 64, 99]]

full_logits = jax.jit(llama.full_logits, static_argnums=1)
generate = jax.jit(llama.greedy_generate, static_argnums=(1, 4))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("tiny_llama")
  folder = write_llama_folder(str(root / "hf"))
  f32 = write_llama_gguf(str(root / "tiny.gguf"))
  q8 = write_llama_gguf(str(root / "tiny-q8.gguf"), quantized=True)
  config, params = llama.load_llama(folder)
  return {"root": root, "folder": folder, "f32": f32, "q8": q8, "config": config,
          "params": params, "gguf": gguf_tensors(tiny_state_dict())}


# -- an independent NumPy Llama (llama.cpp's conventions, float64) -----------------------

def numpy_logits(g, ids):
  """Logits of one unpadded row from GGUF-named, torch-layout tensors whose query/key rows
  are permuted; rotary rotates ADJACENT pairs (2i, 2i+1), as llama.cpp does."""
  g = {k: np.asarray(v, np.float64) for k, v in g.items()}
  n = len(ids)
  rms = lambda x, w: x / np.sqrt(np.mean(x * x, -1, keepdims=True) + CONFIG["rms_norm_eps"]) * w
  freq = CONFIG["rope_theta"] ** (-np.arange(0, HD, 2) / HD)               # [HD/2]
  angle = np.arange(n)[:, None, None] * freq                               # [n, 1, HD/2]

  def rope(x):                                                              # [n, heads, HD]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * np.cos(angle) - odd * np.sin(angle)
    out[..., 1::2] = odd * np.cos(angle) + even * np.sin(angle)
    return out

  x = g["token_embd.weight"][ids]
  for i in range(CONFIG["num_hidden_layers"]):
    b = lambda name: g[f"blk.{i}.{name}.weight"]
    h = rms(x, b("attn_norm"))
    q = rope((h @ b("attn_q").T).reshape(n, H, HD))
    k = rope((h @ b("attn_k").T).reshape(n, KV, HD))
    v = (h @ b("attn_v").T).reshape(n, KV, HD)
    heads = []
    for j in range(H):
      kv = j // (H // KV)
      a = q[:, j] @ k[:, kv].T / np.sqrt(HD)
      a = np.where(np.tril(np.ones((n, n), bool)), a, -np.inf)
      a = np.exp(a - a.max(-1, keepdims=True))
      heads.append(a / a.sum(-1, keepdims=True) @ v[:, kv])
    x = x + np.concatenate(heads, -1) @ b("attn_output").T
    h = rms(x, b("ffn_norm"))
    gate = h @ b("ffn_gate").T
    x = x + (gate / (1 + np.exp(-gate)) * (h @ b("ffn_up").T)) @ b("ffn_down").T
  return rms(x, g["output_norm.weight"]) @ g["token_embd.weight"].T


def numpy_greedy(g, row, n):
  seq = list(row)
  for _ in range(n):
    seq.append(int(np.argmax(numpy_logits(g, seq)[-1])))
  return seq[len(row):]


def left_padded(rows, length):
  ids, mask = left_pad(rows, length)
  return jnp.asarray(ids), jnp.asarray(mask)


# -- the forward pass ---------------------------------------------------------------------

def test_logits_equal_adjacent_pair_numpy_reference_and_ignore_left_padding(tiny):
  config, params = tiny["config"], tiny["params"]
  ids, mask = left_padded(ROWS, 9)
  logits = np.asarray(full_logits(params, config, llama.embed_tokens(params, ids), mask))
  for i, row in enumerate(ROWS):
    real = logits[i, 9 - len(row):]
    np.testing.assert_allclose(real, numpy_logits(tiny["gguf"], row), atol=1e-4, rtol=1e-4)
    alone = full_logits(params, config, llama.embed_tokens(params, jnp.asarray([row])),
                        jnp.ones((1, len(row)), bool))
    np.testing.assert_allclose(real, np.asarray(alone[0]), atol=1e-5, rtol=1e-5)
  # The permutation matters: adjacent pairs on the UNpermuted (Hugging Face) rows differ.
  unpermuted = dict(tiny["gguf"])
  for i in range(CONFIG["num_hidden_layers"]):
    for name, heads in (("attn_q", H), ("attn_k", KV)):
      key = f"blk.{i}.{name}.weight"
      unpermuted[key] = llama.unpermute_rotary_rows(unpermuted[key], heads)
  assert np.abs(numpy_logits(unpermuted, ROWS[0]) - logits[0, 2:]).max() > 1e-2


def test_unpermute_inverts_the_converters_permutation():
  w = np.arange(16 * 5, dtype=np.float32).reshape(16, 5)
  p = permute_rotary_rows(w, 2)
  # Per head (8 rows, half 4): rows 0,4,1,5,2,6,3,7 interleave the two halves.
  np.testing.assert_array_equal(p[:8, 0], w[[0, 4, 1, 5, 2, 6, 3, 7], 0])
  np.testing.assert_array_equal(p[8:, 0], w[[8, 12, 9, 13, 10, 14, 11, 15], 0])
  np.testing.assert_array_equal(llama.unpermute_rotary_rows(p, 2), w)


# -- the loaders --------------------------------------------------------------------------

def test_gguf_f32_and_folder_give_the_same_params_and_q8_within_quantization_error(tiny):
  config, params = tiny["config"], tiny["params"]
  meta, tensors = read_gguf(tiny["f32"])
  gconfig = llama.LlamaConfig.from_gguf(meta, tied="output.weight" not in tensors)
  assert gconfig.rms_norm_eps == pytest.approx(1e-5, rel=1e-6)
  assert dataclasses.replace(gconfig, rms_norm_eps=config.rms_norm_eps) == config
  assert config.num_kv_heads == 2 and config.max_positions == 128 and config.tie_embeddings
  gparams = llama.gguf_params(tensors, gconfig)
  assert jax.tree.structure(gparams) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, gparams, params)

  qmeta, qtensors = read_gguf(tiny["q8"])
  qparams = llama.gguf_params(qtensors, llama.LlamaConfig.from_gguf(qmeta, tied=True))
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  qflat = dict(jax.tree_util.tree_flatten_with_path(qparams)[0])
  for path, exact in flat:
    exact, approx = np.asarray(exact), np.asarray(qflat[path])
    if "norm" in jax.tree_util.keystr(path):
      np.testing.assert_array_equal(approx, exact)                        # kept F32
    else:  # Q8_0: 32-value blocks, scale max|x|/127 -> error at most ~half a step
      err = np.abs(approx - exact).max()
      assert 0 < err <= 0.6 * np.abs(exact).max() / 127, jax.tree_util.keystr(path)


def test_greedy_generate_with_cache_equals_numpy_recompute_loop(tiny):
  config, params = tiny["config"], tiny["params"]
  ids, mask = left_padded(ROWS, 8)
  out = np.asarray(generate(params, config, llama.embed_tokens(params, ids), mask, 6))
  assert out.shape == (3, 6)
  for i, row in enumerate(ROWS):
    assert out[i].tolist() == numpy_greedy(tiny["gguf"], row, 6)


def test_soft_embeddings_of_token_ids_equal_prepending_the_ids(tiny):
  config, params = tiny["config"], tiny["params"]
  soft_ids = [[70, 71, 72], [4, 250, 4], [100, 2, 30]]
  ids, mask = left_padded(ROWS, 8)
  tokens = llama.embed_tokens(params, ids)
  ones = jnp.ones((3, 3), bool)
  with_soft = generate(params, config,
                       jnp.concatenate([llama.embed_tokens(params, jnp.asarray(soft_ids)),
                                        tokens], 1), jnp.concatenate([ones, mask], 1), 6)
  as_ids, as_mask = left_padded([s + r for s, r in zip(soft_ids, ROWS)], 11)
  np.testing.assert_array_equal(
      with_soft, generate(params, config, llama.embed_tokens(params, as_ids), as_mask, 6))
  assert np.asarray(with_soft)[1].tolist() == numpy_greedy(tiny["gguf"], soft_ids[1] + ROWS[1], 6)
  random_soft = jax.random.normal(jax.random.key(3), (3, 3, D))
  steered = generate(params, config, jnp.concatenate([random_soft, tokens], 1),
                     jnp.concatenate([ones, mask], 1), 6)
  assert np.asarray(steered).tolist() != np.asarray(with_soft).tolist()


# -- load_causal_lm -----------------------------------------------------------------------

TEXTS = ["Hello World! 12345 and 2024", "the cat sat on   the mat\n\tok?",
         "<|im_start|>user\nwhat is 42?<|im_end|>\n<|endoftext|>", "ünïcode ☃ 7"]


def test_folder_and_gguf_causal_lms_agree(tiny):
  folder, gg = load_causal_lm(tiny["folder"]), load_causal_lm(tiny["f32"])
  for lm in (folder, gg):
    assert lm.stop_ids == (0, 2)                                  # <|endoftext|>, <|im_end|>
    assert lm.chat_template == CHATML and lm.hidden_size == D and lm.max_positions == 128
    assert lm.render([{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "hi"}]) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n")
  for text in TEXTS:
    ids = folder.tokenizer.encode(text).ids
    assert gg.tokenizer.encode(text).ids == ids, text
    assert gg.tokenizer.decode(ids, skip_special_tokens=False) == text
    assert folder.tokenizer.decode(ids, skip_special_tokens=False) == text
  assert gg.tokenizer.encode("12345").ids == [19, 20, 21, 22, 23]              # "1".."5"
  assert gg.tokenizer.encode("<|im_start|><|im_end|>").ids == [1, 2]
  assert folder.embedding_std == pytest.approx(gg.embedding_std)

  prompt = folder.render([{"role": "user", "content": "sort the words 12 34"}])
  ids = jnp.asarray([folder.tokenizer.encode(prompt).ids])
  mask = jnp.ones(ids.shape, bool)
  out = np.asarray(folder.generate(folder.embed(ids), mask, 7))
  np.testing.assert_array_equal(out, gg.generate(gg.embed(ids), mask, 7))
  assert out[0].tolist() == numpy_greedy(tiny["gguf"], np.asarray(ids[0]).tolist(), 7)


def test_digit_splitting_follows_the_gguf_pre_tokenizer_name(tiny):
  meta, _ = read_gguf(tiny["f32"])
  assert meta["tokenizer.ggml.pre"] == "smollm"
  split = gguf_tokenizer(meta).encode("12345 2024").ids
  merged = gguf_tokenizer(dict(meta, **{"tokenizer.ggml.pre": "gpt2"})).encode("12345 2024").ids
  assert len(split) == 10 and len(merged) < len(split)   # the vocabulary has merges like "12"
  with pytest.raises(ValueError, match="llama"):
    gguf_tokenizer(dict(meta, **{"tokenizer.ggml.model": "llama"}))


def test_plain_transcript_without_a_chat_template(tiny):
  path = write_llama_folder(str(tiny["root"] / "plain"), chat_template=None)
  lm = load_causal_lm(path)
  assert lm.chat_template is None
  assert lm.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": "sort"}]) == (
      "user: hi\nassistant: yo\nuser: sort\nassistant:")
  gg = load_causal_lm(write_llama_gguf(str(tiny["root"] / "plain.gguf"), chat_template=None))
  assert gg.chat_template is None and gg.render([{"role": "user", "content": "x"}]) == (
      "user: x\nassistant:")
  with pytest.raises(ValueError, match="role"):
    lm.render([{"role": "user", "text": "hi"}])


# -- errors -------------------------------------------------------------------------------

def test_bad_weights_and_configs_are_named(tiny, tmp_path):
  config = tiny["config"]
  sd = tiny_state_dict()
  del sd["model.layers.1.mlp.up_proj.weight"]
  sd["model.layers.0.self_attn.k_proj.weight"] = sd["model.layers.0.self_attn.k_proj.weight"][:8]
  with pytest.raises(ValueError) as err:
    llama.hf_params(sd, config, "tiny.safetensors")
  text = str(err.value)
  assert text.startswith("tiny.safetensors: ")
  assert "layers.1.mlp.up_proj.weight missing" in text
  assert "layers.0.self_attn.k_proj.weight has shape [8, 32], expected [16, 32]" in text
  sd = tiny_state_dict()
  sd["lm_head.weight"] = sd["model.embed_tokens.weight"] + 1
  with pytest.raises(ValueError, match="lm_head.weight differs"):
    llama.hf_params(sd, config)
  untied = dataclasses.replace(config, tie_embeddings=False)
  with pytest.raises(ValueError, match="lm_head.weight missing"):
    llama.hf_params(tiny_state_dict(), untied)
  untied_params = llama.hf_params(sd, untied)
  np.testing.assert_array_equal(untied_params["lm_head"], sd["lm_head.weight"].T)

  with pytest.raises(ValueError, match="rope_scaling"):
    llama.LlamaConfig.from_hf(dict(CONFIG, rope_scaling={"type": "linear", "factor": 2.0}))
  with pytest.raises(ValueError, match="num_attention_heads"):
    llama.LlamaConfig.from_hf({k: v for k, v in CONFIG.items() if k != "num_attention_heads"})
  with pytest.raises(ValueError, match="num_kv_heads=3"):
    llama.LlamaConfig.from_hf(dict(CONFIG, num_key_value_heads=3))

  folder = shutil.copytree(tiny["folder"], tmp_path / "copy")
  os.remove(folder / "model.safetensors")
  with pytest.raises(FileNotFoundError, match="no model.safetensors"):
    llama.load_llama(str(folder))
  os.remove(folder / "config.json")
  with pytest.raises(FileNotFoundError, match="no config.json"):
    llama.load_llama(str(folder))
  with pytest.raises(FileNotFoundError, match="no config.json"):
    load_causal_lm(str(folder))
  with open(tmp_path / "config.json", "w") as f:
    json.dump(dict(CONFIG, model_type="mistral"), f)
  shutil.copy(os.path.join(tiny["folder"], "tokenizer.json"), tmp_path)
  with pytest.raises(ValueError, match="model_type='mistral'"):
    load_causal_lm(str(tmp_path))

  other = write_llama_gguf(str(tmp_path / "gpt2.gguf"), arch="gpt2")
  with pytest.raises(ValueError, match="general.architecture='gpt2'"):
    load_causal_lm(other)
  with open(tmp_path / "junk.gguf", "wb") as f:
    f.write(b"not a gguf file at all" * 4)
  with pytest.raises(ValueError, match="junk.gguf is not a readable GGUF file"):
    read_gguf(str(tmp_path / "junk.gguf"))
  with pytest.raises(FileNotFoundError, match="missing.gguf"):
    load_causal_lm(str(tmp_path / "missing.gguf"))


def test_generation_longer_than_the_context_is_refused(tiny):
  config, params = tiny["config"], tiny["params"]
  ids, mask = left_padded(ROWS, 120)
  with pytest.raises(ValueError, match="exceeds the model's 128 positions"):
    llama.greedy_generate(params, config, llama.embed_tokens(params, ids), mask, 9)


# -- the bundled SmolLM2-135M-Instruct ------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2():
  return load_causal_lm(SMOLLM2)


def test_bundled_smollm2_tokenizes_and_answers(smollm2):
  lm, tok = smollm2, smollm2.tokenizer
  assert tok.encode("<|im_start|>").ids == [1] and tok.encode("<|im_end|>").ids == [2]
  digits = tok.encode("12345").ids
  assert [tok.decode([i]) for i in digits] == ["1", "2", "3", "4", "5"]
  sentence = "The quick brown fox jumps over 13 lazy dogs, doesn't it?"
  assert tok.decode(tok.encode(sentence).ids) == sentence
  assert lm.stop_ids == (0, 2) and lm.hidden_size == 576 and lm.max_positions == 8192
  prompt = lm.render([{"role": "user", "content": "What is the capital of France?"}])
  assert prompt.startswith("<|im_start|>system\n") and prompt.endswith(
      "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
  ids = jnp.asarray([tok.encode(prompt).ids])
  out = np.asarray(lm.generate(lm.embed(ids), jnp.ones(ids.shape, bool), 12))[0]
  answer = tok.decode(lm.cut(out)[0])
  assert "Paris" in answer, answer


def test_bundled_smollm2_token_count_lower_bound_holds_and_is_reached(smollm2):
  from fedbbpt_jax.models.token_bytes import token_lower_bound  # pylint: disable=import-outside-toplevel
  tok = smollm2.tokenizer
  bound = token_lower_bound(tok)
  # 81 = '\n' and 80 spaces in one token; 21 byte values have no token and are dropped.
  assert bound.max_bytes == 81 and len(tok.encode("\n" + " " * 80).ids) == 1
  assert bound.dropped_bytes == bytes([0x04, 0x06, 0x13, 0x14, 0x16, 0x1d, 0xc0, 0xc1, 0xf1,
                                       0xf2] + list(range(0xf5, 0x100)))
  assert tok.encode("\x04\x06" * 40).ids == [] and bound.min_tokens("\x04\x06" * 40) == 0
  rng = np.random.default_rng(0)
  pieces = [" ", "\n", "\t", "a", "é", "漢", "😀", "7", "\x04", "\U00040000", "<|im_start|>",
            " the", "-", "\u0301"]
  for _ in range(200):
    text = "".join(pieces[i] * int(n) for i, n in zip(rng.integers(0, len(pieces), 10),
                                                       rng.integers(1, 90, 10)))
    assert len(tok.encode(text).ids) >= bound.min_tokens(text), text
