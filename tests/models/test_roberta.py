"""RoBERTa masked LM: HF-named tiny checkpoint -> Flax, checked against a numpy forward."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models.roberta import (RobertaTokenizer, WeightLoadError, load_roberta_mlm,
                                        roberta_config, verbalizer_logits)
from tests.helpers.glue_roberta import (HF_CONFIG, make_tokenizer_file, random_state_dict,
                                        write_model_dir)


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
  b, length = ids.shape
  x = g(f"{e}.word_embeddings.weight")[ids] + g(f"{e}.position_embeddings.weight")[
      np.arange(length) + 2] + g(f"{e}.token_type_embeddings.weight")[0]
  x = ln(x, f"{e}.LayerNorm")
  nh, hd = 4, 8
  for i in range(2):
    p = f"roberta.encoder.layer.{i}"
    q, k, v = (lin(x, f"{p}.attention.self.{n}").reshape(b, length, nh, hd) for n in
               ("query", "key", "value"))
    s = np.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd) + np.where(mask[:, None, None] > 0,
                                                                       0, -1e9)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    a = np.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, length, -1)
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
  with pytest.raises(WeightLoadError,
                     match=r"'roberta\.encoder\.layer\.1\.intermediate\.dense\.bias' is missing"):
    roberta_variables_from_state_dict(sd, config)
  sd = random_state_dict()
  sd["lm_head.dense.weight"] = sd["lm_head.dense.weight"][:, :31]
  with pytest.raises(WeightLoadError,
                     match=r"'lm_head\.dense\.weight' has shape \(32, 31\), expected \(32, 32\)"):
    roberta_variables_from_state_dict(sd, config)
  sd = random_state_dict()
  sd["lm_head.decoder.weight"] = sd["lm_head.decoder.weight"] + 1
  with pytest.raises(WeightLoadError, match="not tied"):
    roberta_variables_from_state_dict(sd, config)


def test_tokenizer_template_truncation_keeps_mask(tmp_path):
  file, v = make_tokenizer_file(tmp_path / "tokenizer.json")
  tok = RobertaTokenizer(file, max_length=12)
  assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 18)
  assert tok.verbalizer_ids(["terrible", "great"]) == [v["terrible"], v["great"]]
  sentences = [("a film",), ("a very " * 9 + "long film",)]
  ids, mask = tok.encode_template("{s1} it was <mask>.", sentences, prompt_ids=[7, 8])
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
