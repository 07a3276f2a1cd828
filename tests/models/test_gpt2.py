"""The GPT-2 causal LM: the real loading code on a tiny model made here (no GPT-2 weights
ship offline), checked against an independent NumPy forward; left padding changes
nothing; soft embeddings equal token ids; greedy decoding equals a NumPy greedy loop."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models.gpt2 import greedy_generate, load_gpt2, token_embeddings
from fedbbpt_jax.models.causal_lm import left_pad
from tests.helpers.glue_roberta import write_safetensors
from tests.helpers.tiny_gpt2 import tiny_state_dict as helper_state_dict

V, P, D, H, L = 50, 32, 16, 2, 2
CONFIG = {"vocab_size": V, "n_positions": P, "n_embd": D, "n_layer": L, "n_head": H,
          "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}


def tiny_state_dict(seed=0):
  return helper_state_dict(CONFIG, seed)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_gpt2")
  sd = tiny_state_dict()
  with open(path / "config.json", "w") as f:
    json.dump(CONFIG, f)
  write_safetensors(str(path / "model.safetensors"), sd)
  model, variables = load_gpt2(str(path))
  return model, variables, {k.removeprefix("transformer."): v for k, v in sd.items()}


def numpy_logits(sd, ids):
  """GPT-2 written out in NumPy, one unpadded row."""
  def ln(x, p):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * sd[p + ".weight"] + sd[p + ".bias"]

  gelu = lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
  n = len(ids)
  x = sd["wte.weight"][ids] + sd["wpe.weight"][:n]
  for i in range(L):
    p = f"h.{i}."
    h = ln(x, p + "ln_1")
    q, k, v = np.split(h @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"], 3, -1)
    heads = []
    for j in range(H):
      s = slice(j * D // H, (j + 1) * D // H)
      a = q[:, s] @ k[:, s].T / np.sqrt(D // H)
      a = np.where(np.tril(np.ones((n, n), bool)), a, -np.inf)
      a = np.exp(a - a.max(-1, keepdims=True))
      heads.append((a / a.sum(-1, keepdims=True)) @ v[:, s])
    x = x + np.concatenate(heads, -1) @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
    h = gelu(ln(x, p + "ln_2") @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"])
    x = x + h @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
  return ln(x, "ln_f") @ sd["wte.weight"].T


def left_padded(rows, length):
  ids, mask = left_pad(rows, length)
  return jnp.asarray(ids), jnp.asarray(mask)


ROWS = [[3, 17, 9, 41, 5, 22], [8, 1, 30]]


def test_logits_equal_numpy_and_ignore_left_padding(tiny):
  model, variables, sd = tiny
  ids, mask = left_padded(ROWS, 9)
  logits = model.apply(variables, token_embeddings(model, variables, ids), mask)
  for i, row in enumerate(ROWS):
    np.testing.assert_allclose(np.asarray(logits[i, 9 - len(row):]), numpy_logits(sd, row),
                               rtol=2e-4, atol=2e-4)


def test_greedy_decoding_equals_a_numpy_greedy_loop(tiny):
  model, variables, sd = tiny
  ids, mask = left_padded(ROWS, 7)
  embeds = token_embeddings(model, variables, ids)
  out = jax.jit(greedy_generate, static_argnums=(0, 4))(model, variables, embeds, mask, 5)
  for i, row in enumerate(ROWS):
    seq = list(row)
    for _ in range(5):
      seq.append(int(np.argmax(numpy_logits(sd, seq)[-1])))
    assert np.asarray(out[i]).tolist() == seq[len(row):]


def test_soft_embeddings_steer_generation(tiny):
  """A soft prompt is a block of free embeddings before the tokens: zero-length equals
  the plain prompt; a different soft prompt changes the continuation."""
  model, variables, _ = tiny
  ids, mask = left_padded(ROWS[:1], 6)
  tokens = token_embeddings(model, variables, ids)
  soft = jax.random.normal(jax.random.key(1), (1, 3, D))
  with_soft = greedy_generate(model, variables, jnp.concatenate([soft, tokens], 1),
                              jnp.concatenate([jnp.ones((1, 3), bool), mask], 1), 6)
  plain = greedy_generate(model, variables, tokens, mask, 6)
  assert np.asarray(with_soft).tolist() != np.asarray(plain).tolist()
  # A soft block that is exactly the embeddings of tokens == prompting with those tokens.
  as_ids, as_mask = left_padded([[7, 7, 7] + ROWS[0]], 9)
  soft_tokens = token_embeddings(model, variables, jnp.asarray([[7, 7, 7]]))
  np.testing.assert_array_equal(
      greedy_generate(model, variables, jnp.concatenate([soft_tokens, tokens], 1),
                      jnp.concatenate([jnp.ones((1, 3), bool), mask], 1), 6),
      greedy_generate(model, variables, token_embeddings(model, variables, as_ids), as_mask, 6))


def test_bad_weights_are_named(tiny, tmp_path):
  sd = tiny_state_dict()
  del sd["transformer.h.1.mlp.c_fc.bias"]
  sd["transformer.wpe.weight"] = sd["transformer.wpe.weight"][:10]
  sd["lm_head.weight"] = sd["lm_head.weight"] + 1
  with open(tmp_path / "config.json", "w") as f:
    json.dump(CONFIG, f)
  write_safetensors(str(tmp_path / "model.safetensors"), sd)
  with pytest.raises(ValueError) as err:
    load_gpt2(str(tmp_path))
  text = str(err.value)
  assert "h.1.mlp.c_fc.bias missing" in text
  assert "wpe.weight has shape [10, 16], expected [32, 16]" in text
  assert "lm_head.weight differs from wte.weight" in text
  os.remove(tmp_path / "model.safetensors")
  with pytest.raises(FileNotFoundError, match="no model.safetensors"):
    load_gpt2(str(tmp_path))
