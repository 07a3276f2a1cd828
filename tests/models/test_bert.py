"""BERT encoder and the all-MiniLM-L6-v2 loader: reference cosines, masks, embeddings path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models.bert import (BertConfig, BertModel, TransformerEmbeddings,
                                     normalized_mean_pool)
from fedbbpt_jax.models.minilm import TextTokenizer, load_minilm, read_safetensors


@pytest.fixture(scope="module")
def minilm():
  model, variables = load_minilm()
  variables = jax.tree.map(jnp.asarray, variables)
  encode = jax.jit(lambda v, ids, m: normalized_mean_pool(model.apply(v, ids, m), m))
  return model, variables, encode


def embed(minilm, texts, max_length=16):
  _, variables, encode = minilm
  ids, mask = TextTokenizer.minilm(max_length)(texts)
  return np.asarray(encode(variables, jnp.asarray(ids), jnp.asarray(mask)))


def test_reference_cosines_of_sentence_transformers(minilm):
  # Reference: sentence-transformers (torch) gives 0.48819852 and 0.9038.
  e = embed(minilm, ["The movie was wonderful.", "A terrible, boring film.",
                     "The film was great."])
  np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
  assert abs(float(e[0] @ e[1]) - 0.48819852) < 1e-4
  assert abs(float(e[0] @ e[2]) - 0.9038) < 1e-4


def test_padding_length_does_not_change_embeddings(minilm):
  texts = ["Birth control pills gave me acne.", "Great for my migraines"]
  np.testing.assert_allclose(embed(minilm, texts, 12), embed(minilm, texts, 40), atol=2e-5)


def test_inputs_embeds_path_equals_input_ids_path(minilm):
  model, variables, _ = minilm
  ids, mask = TextTokenizer.minilm(12)(["an embedding path check"])
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  words = model.apply(variables, ids, method=BertModel.embed_tokens)
  from_ids = model.apply(variables, ids, mask)
  from_embeds = model.apply(variables, None, mask, inputs_embeds=words)
  np.testing.assert_allclose(np.asarray(from_ids), np.asarray(from_embeds), atol=1e-5)


def test_position_offset_and_type_vocab_size():
  # RoBERTa-style: one token type, positions start at pad_id + 1 = 2.
  config = BertConfig(vocab_size=11, hidden_size=8, num_layers=1, num_heads=2,
                      intermediate_size=16, max_position_embeddings=12, type_vocab_size=1,
                      position_offset=2)
  module = TransformerEmbeddings(config)
  ids = jnp.asarray([[3, 4, 5]])
  variables = module.init(jax.random.key(0), ids)
  p = variables["params"]
  assert p["token_type_embeddings"]["embedding"].shape == (1, 8)
  raw = (p["word_embeddings"]["embedding"][ids[0]] + p["position_embeddings"]["embedding"][2:5]
         + p["token_type_embeddings"]["embedding"][0])
  mu = raw.mean(-1, keepdims=True)
  var = ((raw - mu) ** 2).mean(-1, keepdims=True)
  expected = (raw - mu) / jnp.sqrt(var + config.layer_norm_eps) * p["layer_norm"]["scale"] \
      + p["layer_norm"]["bias"]
  np.testing.assert_allclose(np.asarray(module.apply(variables, ids)[0]), np.asarray(expected),
                             atol=1e-5)


def test_safetensors_reader_round_trip(tmp_path):
  import json
  import struct
  a = np.arange(6, dtype=np.float32).reshape(2, 3)
  b = np.asarray([7, -1], np.int64)
  header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
            "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
            "__metadata__": {"format": "pt"}}
  raw = json.dumps(header).encode()
  path = tmp_path / "t.safetensors"
  path.write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
  out = read_safetensors(str(path))
  np.testing.assert_array_equal(out["a"], a)
  np.testing.assert_array_equal(out["b"], b)


def test_tokenizer_pads_truncates_and_strips_specials():
  tok = TextTokenizer.minilm(6)
  ids, mask = tok(["The movie was wonderful and long.", "Hi"])
  assert ids.shape == mask.shape == (2, 6) and ids.dtype == np.int32
  assert ids[0, 0] == tok.cls_id and ids[0, -1] == tok.sep_id and mask[0].all()
  assert list(mask[1]) == [1, 1, 1, 0, 0, 0] and ids[1, 2] == tok.sep_id
  assert tok.pieces("The movie") == [1996, 3185]
  assert tok.decode(ids[1]) == "hi"
