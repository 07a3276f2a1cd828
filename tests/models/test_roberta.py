"""RoBERTa masked LM: HF-named tiny checkpoint -> Flax, checked against a numpy forward."""

import json
import math
import os
import pickle
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models.roberta import (RobertaTokenizer, WeightLoadError, load_roberta_mlm,
                                        roberta_config, verbalizer_logits)

HF_CONFIG = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 40,
             "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1}


def random_state_dict(seed=0):
  rng = np.random.default_rng(seed)
  c, h, f = HF_CONFIG, HF_CONFIG["hidden_size"], HF_CONFIG["intermediate_size"]
  r = lambda *s: rng.normal(0, 0.2, s).astype(np.float32)
  sd = {"roberta.embeddings.word_embeddings.weight": r(c["vocab_size"], h),
        "roberta.embeddings.position_embeddings.weight": r(c["max_position_embeddings"], h),
        "roberta.embeddings.token_type_embeddings.weight": r(1, h),
        "roberta.embeddings.LayerNorm.weight": 1 + r(h), "roberta.embeddings.LayerNorm.bias": r(h),
        "roberta.embeddings.position_ids": np.arange(40, dtype=np.int64)[None],
        "lm_head.dense.weight": r(h, h), "lm_head.dense.bias": r(h),
        "lm_head.layer_norm.weight": 1 + r(h), "lm_head.layer_norm.bias": r(h),
        "lm_head.bias": r(c["vocab_size"])}
  sd["lm_head.decoder.weight"] = sd["roberta.embeddings.word_embeddings.weight"].copy()
  for i in range(c["num_hidden_layers"]):
    p = f"roberta.encoder.layer.{i}"
    for name, (o, n) in {"attention.self.query": (h, h), "attention.self.key": (h, h),
                         "attention.self.value": (h, h), "attention.output.dense": (h, h),
                         "intermediate.dense": (f, h), "output.dense": (h, f)}.items():
      sd[f"{p}.{name}.weight"], sd[f"{p}.{name}.bias"] = r(o, n), r(o)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
      sd[f"{p}.{name}.weight"], sd[f"{p}.{name}.bias"] = 1 + r(h), r(h)
  return sd


def write_safetensors(path, sd):
  codes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
  header, blobs, offset = {}, [], 0
  for name, a in sd.items():
    raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
  head = json.dumps(header).encode()
  with open(path, "wb") as fh:
    fh.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def write_model_dir(path, sd):
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as fh:
    json.dump(HF_CONFIG, fh)
  write_safetensors(os.path.join(path, "model.safetensors"), sd)
  return str(path)


def numpy_forward(sd, ids, mask, positions):
  """Independent RoBERTa MLM forward on HF-named tensors (float64)."""
  g = lambda k: sd[k].astype(np.float64)
  erf = np.vectorize(math.erf)
  gelu = lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2)))

  def ln(x, p):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g(p + ".weight") + g(p + ".bias")

  lin = lambda x, p: x @ g(p + ".weight").T + g(p + ".bias")
  e = "roberta.embeddings"
  b, l = ids.shape
  x = g(f"{e}.word_embeddings.weight")[ids] + g(f"{e}.position_embeddings.weight")[
      np.arange(l) + 2] + g(f"{e}.token_type_embeddings.weight")[0]
  x = ln(x, f"{e}.LayerNorm")
  nh, hd = 4, 8
  for i in range(2):
    p = f"roberta.encoder.layer.{i}"
    q, k, v = (lin(x, f"{p}.attention.self.{n}").reshape(b, l, nh, hd) for n in
               ("query", "key", "value"))
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd) + np.where(mask[:, None, None] > 0,
                                                                       0, -1e9)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    a = np.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, l, -1)
    x = ln(x + lin(a, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
    x = ln(x + lin(gelu(lin(x, f"{p}.intermediate.dense")), f"{p}.output.dense"),
           f"{p}.output.LayerNorm")
  h = x[np.arange(b), positions]
  h = ln(gelu(lin(h, "lm_head.dense")), "lm_head.layer_norm")
  return h @ g(f"{e}.word_embeddings.weight").T + g("lm_head.bias")


def test_loaded_model_matches_numpy_forward(tmp_path):
  sd = random_state_dict()
  model, variables = load_roberta_mlm(write_model_dir(tmp_path / "m", sd), mask_token_id=99)
  assert model.config.position_offset == 2 and model.config.type_vocab_size == 1
  ids = np.array([[0, 5, 6, 99, 7, 2, 1, 1], [0, 8, 99, 9, 10, 11, 12, 2]], np.int32)
  mask = (ids != 1).astype(np.int32)
  logits = jax.jit(model.apply)(jax.tree.map(jnp.asarray, variables), ids, mask)
  want = numpy_forward(sd, ids, mask, np.array([3, 2]))
  assert logits.shape == (2, 100)
  np.testing.assert_allclose(np.asarray(logits), want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(verbalizer_logits(logits, [4, 9]), want[:, [4, 9]], atol=1e-5)
  # Padding beyond the real tokens does not change the mask logits.
  wide = np.pad(ids, ((0, 0), (0, 4)), constant_values=1)
  np.testing.assert_allclose(model.apply(variables, wide, (wide != 1).astype(np.int32)), logits,
                             atol=1e-5)


def test_legacy_torch_bin_is_read(tmp_path):
  from tests.models.test_efficientnet_lite import _write_legacy_file  # tiny torch-free writer
  sd = random_state_dict(seed=1)
  model_dir = tmp_path / "bin"
  write_model_dir(model_dir, {})
  os.remove(model_dir / "model.safetensors")
  storages = {str(i): np.ascontiguousarray(a).ravel() for i, a in enumerate(sd.values())}
  specs = {n: (str(i), 0, a.shape, tuple(int(np.prod(a.shape[j + 1:])) for j in range(a.ndim)))
           for i, (n, a) in enumerate(sd.items())}
  _write_legacy_file(model_dir / "pytorch_model.bin", storages, specs)
  model, variables = load_roberta_mlm(str(model_dir), mask_token_id=99)
  ids = np.array([[0, 5, 99, 7, 2]], np.int32)
  np.testing.assert_allclose(np.asarray(model.apply(variables, ids, np.ones_like(ids))),
                             numpy_forward(sd, ids, np.ones_like(ids), np.array([2])),
                             atol=1e-5, rtol=1e-5)


def test_loader_names_missing_and_misshaped_tensors():
  config = roberta_config(HF_CONFIG)
  from fedbbpt_jax.models.roberta import roberta_variables_from_state_dict
  sd = random_state_dict()
  del sd["roberta.encoder.layer.1.intermediate.dense.bias"]
  with pytest.raises(WeightLoadError, match=r"'roberta\.encoder\.layer\.1\.intermediate\.dense\.bias' is missing"):
    roberta_variables_from_state_dict(sd, config)
  sd = random_state_dict()
  sd["lm_head.dense.weight"] = sd["lm_head.dense.weight"][:, :31]
  with pytest.raises(WeightLoadError, match=r"'lm_head\.dense\.weight' has shape \(32, 31\), expected \(32, 32\)"):
    roberta_variables_from_state_dict(sd, config)
  sd = random_state_dict()
  sd["lm_head.decoder.weight"] = sd["lm_head.decoder.weight"] + 1
  with pytest.raises(WeightLoadError, match="not tied"):
    roberta_variables_from_state_dict(sd, config)


def make_tokenizer_file(path):
  from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
  words = ["<s>", "<pad>", "</s>", "<unk>", "great", "terrible", "it", "was", "a", "film",
           "long", "very", ".", "?", ",", "entailment", "yes", "no"]
  tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.add_special_tokens(["<s>", "<pad>", "</s>", AddedToken("<mask>", lstrip=True)])
  tok.save(str(path))
  return str(path), {w: i for i, w in enumerate(words)}


def test_tokenizer_template_truncation_keeps_mask(tmp_path):
  file, v = make_tokenizer_file(tmp_path / "tokenizer.json")
  tok = RobertaTokenizer(file, max_length=12)
  assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 18)
  assert tok.verbalizer_ids(["terrible", "great"]) == [v["terrible"], v["great"]]
  ids, mask = tok.encode_template("{s1} it was <mask>.", [("a film",), ("a very " * 9 + "long film",)],
                                  prompt_ids=[7, 8])
  row0 = [0, 7, 8, v["a"], v["film"], v["it"], v["was"], 18, v["."], 2]
  np.testing.assert_array_equal(ids[0], row0 + [1, 1])
  np.testing.assert_array_equal(mask[0], [1] * 10 + [0, 0])
  # Second text truncated so that prompt + template + </s> fit in 12 tokens.
  np.testing.assert_array_equal(ids[1], [0, 7, 8, v["a"], v["very"], v["a"], v["very"], v["it"],
                                         v["was"], 18, v["."], 2])
  assert ids[1, -1] == 2 and 18 in ids[1] and mask[1].sum() == 12
  pair, _ = tok.encode_template("{s1}? <mask>, {s2}", [("very " * 20, "a film")])
  assert list(pair[0]).count(18) == 1 and pair[0, -1] == 2


def test_masked_lm_blackbox_from_local_dir(tmp_path):
  from fedbbpt_jax.blackbox.text_zoo import make_masked_lm_blackbox
  sd = random_state_dict()
  path = write_model_dir(tmp_path / "m", sd)
  ids = np.array([[0, 5, 6, 99, 7, 2, 1, 1]], np.int32)
  bb = make_masked_lm_blackbox(path, max_length=8, verbalizer_ids=[4, 9])
  assert bb.output_size == 2 and bb.pad_id == 1
  np.testing.assert_allclose(np.asarray(bb(jnp.asarray(ids))),
                             numpy_forward(sd, ids, (ids != 1).astype(np.int32),
                                           np.array([3]))[:, [4, 9]], atol=1e-5, rtol=1e-5)
