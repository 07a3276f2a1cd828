"""A Llama-family causal LM as pure JAX functions over a parameter pytree, its offline
loaders (Hugging Face safetensors folder, or a GGUF file), and greedy decoding with a
key/value cache that starts from input embeddings (soft prompt + prompt tokens).

Architecture (Llama / SmolLM2): token embedding; ``num_layers`` pre-RMSNorm blocks of
causal self-attention with grouped query heads (``num_heads`` queries share
``num_kv_heads`` keys/values) and rotary position embeddings (``rope_theta``, the
``rotate_half`` convention of the Hugging Face checkpoints), then a SwiGLU MLP
(``down(silu(gate(x)) * up(x))``); a final RMSNorm; logits from the embedding matrix
(tied) or an ``lm_head``. Layer weights are stacked on a leading axis and the blocks
run in one ``lax.scan`` (a 30-layer model compiles as one layer does).

Rows are LEFT-padded: ``mask`` marks real positions, positions count real tokens only,
and padded keys are never attended to, so a row's outputs do not depend on padding.

Loaders check every tensor by name and shape. The GGUF converter stores the query and
key projections with their rows permuted for llama.cpp's adjacent-pair rotary
embedding; ``gguf_params`` undoes that permutation, so both loaders give the same
parameters (a test checks it).

Example:
    >>> config, params = load_llama("/models/tiny-llama")   # or models.causal_lm for GGUF
    >>> embeds = embed_tokens(params, ids)
    >>> new_ids = greedy_generate(params, config, embeds, mask, max_new_tokens=16)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models.minilm import read_safetensors


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  """The architecture fields (Hugging Face ``config.json`` names in ``from_hf``)."""

  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  rms_norm_eps: float = 1e-5
  rope_theta: float = 10000.0
  max_positions: int = 2048
  tie_embeddings: bool = True

  def __post_init__(self):
    if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
      raise ValueError(f"hidden_size={self.hidden_size} must split into num_heads="
                       f"{self.num_heads}, and num_heads into num_kv_heads={self.num_kv_heads}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @classmethod
  def from_hf(cls, d: Mapping[str, Any]) -> "LlamaConfig":
    missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size",
                           "num_hidden_layers", "num_attention_heads") if k not in d]
    if missing:
      raise ValueError(f"config.json lacks {missing}")
    if d.get("rope_scaling"):
      raise ValueError(f"config.json: rope_scaling={d['rope_scaling']!r} is not implemented")
    if d.get("hidden_act", "silu") != "silu":
      raise ValueError(f"config.json: hidden_act={d['hidden_act']!r}; Llama uses 'silu'")
    return cls(int(d["vocab_size"]), int(d["hidden_size"]), int(d["intermediate_size"]),
               int(d["num_hidden_layers"]), int(d["num_attention_heads"]),
               int(d.get("num_key_value_heads", d["num_attention_heads"])),
               float(d.get("rms_norm_eps", 1e-5)), float(d.get("rope_theta", 10000.0)),
               int(d.get("max_position_embeddings", 2048)),
               bool(d.get("tie_word_embeddings", True)))

  @classmethod
  def from_gguf(cls, meta: Mapping[str, Any], tied: bool) -> "LlamaConfig":
    arch = meta.get("general.architecture")
    if arch != "llama":
      raise ValueError(f"general.architecture={arch!r}; only 'llama' GGUF files are loaded")
    get = lambda k: meta[f"llama.{k}"]
    heads = int(get("attention.head_count"))
    return cls(len(meta["tokenizer.ggml.tokens"]), int(get("embedding_length")),
               int(get("feed_forward_length")), int(get("block_count")), heads,
               int(meta.get("llama.attention.head_count_kv", heads)),
               float(get("attention.layer_norm_rms_epsilon")),
               float(meta.get("llama.rope.freq_base", 10000.0)),
               int(meta.get("llama.context_length", 2048)), tied)


# -- the model ------------------------------------------------------------------------

def rms_norm(x: jnp.ndarray, scale: jnp.ndarray, eps: float) -> jnp.ndarray:
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * scale


def rotary(x: jnp.ndarray, positions: jnp.ndarray, theta: float) -> jnp.ndarray:
  """Rotary embedding of ``x [B, T, heads, head_dim]`` at ``positions [B, T]``
  (``rotate_half``: dimension ``i`` pairs with ``i + head_dim / 2``)."""
  half = x.shape[-1] // 2
  inv = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angle = positions[..., None].astype(jnp.float32) * inv                    # [B, T, half]
  cos, sin = jnp.cos(angle)[:, :, None], jnp.sin(angle)[:, :, None]
  x1, x2 = x[..., :half], x[..., half:]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def embed_tokens(params: Mapping[str, Any], ids: jnp.ndarray) -> jnp.ndarray:
  """The token embeddings of ``ids`` (what a soft prompt is prepended to)."""
  return jnp.take(params["embed"], ids, axis=0)


def logits_of(params: Mapping[str, Any], config: LlamaConfig, hidden: jnp.ndarray) -> jnp.ndarray:
  """Vocabulary logits of final hidden states (after the final norm)."""
  h = rms_norm(hidden, params["final_norm"], config.rms_norm_eps)
  head = params["embed"].T if config.tie_embeddings else params["lm_head"]
  return h @ head


def empty_cache(config: LlamaConfig, batch: int, slots: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  shape = (config.num_layers, batch, slots, config.num_kv_heads, config.head_dim)
  return jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32)


def forward(params: Mapping[str, Any], config: LlamaConfig, embeds: jnp.ndarray,
            positions: jnp.ndarray, attend: jnp.ndarray, cache: tuple[jnp.ndarray, jnp.ndarray],
            start: int | jnp.ndarray) -> tuple[jnp.ndarray, tuple[jnp.ndarray, jnp.ndarray]]:
  """Hidden states of ``embeds [B, T, D]`` written into cache slots ``[start, start+T)``.

  ``attend [B, T, S]`` says which of the cache's ``S`` slots each query may see (the
  caller's causal and padding mask); ``cache`` is ``(keys, values)``, each
  ``[layers, B, S, kv_heads, head_dim]``. Returns the hidden states before the final
  norm and the updated cache.
  """
  c = config
  b, t, _ = embeds.shape
  groups = c.num_heads // c.num_kv_heads
  scale = 1.0 / np.sqrt(c.head_dim)

  def layer(x, inputs):
    p, keys, values = inputs
    h = rms_norm(x, p["attn_norm"], c.rms_norm_eps)
    q = rotary((h @ p["wq"]).reshape(b, t, c.num_heads, c.head_dim), positions, c.rope_theta)
    k = rotary((h @ p["wk"]).reshape(b, t, c.num_kv_heads, c.head_dim), positions, c.rope_theta)
    v = (h @ p["wv"]).reshape(b, t, c.num_kv_heads, c.head_dim)
    keys = jax.lax.dynamic_update_slice_in_dim(keys, k, start, axis=1)
    values = jax.lax.dynamic_update_slice_in_dim(values, v, start, axis=1)
    q = q.reshape(b, t, c.num_kv_heads, groups, c.head_dim)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, keys) * scale
    scores = jnp.where(attend[:, None, None], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    attn = jnp.einsum("bkgts,bskd->btkgd", weights, values).reshape(b, t, -1)
    x = x + attn @ p["wo"]
    h = rms_norm(x, p["mlp_norm"], c.rms_norm_eps)
    x = x + (jax.nn.silu(h @ p["w_gate"]) * (h @ p["w_up"])) @ p["w_down"]
    return x, (keys, values)

  x, cache = jax.lax.scan(layer, embeds, (params["layers"], cache[0], cache[1]))
  return x, cache


def full_logits(params: Mapping[str, Any], config: LlamaConfig, embeds: jnp.ndarray,
                mask: jnp.ndarray) -> jnp.ndarray:
  """Logits of every position of left-padded ``embeds`` (no cache kept)."""
  mask = mask.astype(bool)
  b, t, _ = embeds.shape
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
  attend = jnp.tril(jnp.ones((t, t), bool))[None] & mask[:, None, :]
  hidden, _ = forward(params, config, embeds, positions, attend, empty_cache(config, b, t), 0)
  return logits_of(params, config, hidden)


def greedy_generate(params: Mapping[str, Any], config: LlamaConfig, embeds: jnp.ndarray,
                    mask: jnp.ndarray, max_new_tokens: int) -> jnp.ndarray:
  """``[B, max_new_tokens]`` argmax continuations of left-padded ``embeds``/``mask``.

  One prefill pass fills the key/value cache; each further token costs one position's
  forward pass. Jittable (``max_new_tokens`` static).
  """
  b, t, _ = embeds.shape
  slots = t + max_new_tokens
  if slots > config.max_positions:
    raise ValueError(f"prompt length {t} + max_new_tokens {max_new_tokens} exceeds the "
                     f"model's {config.max_positions} positions")
  mask = mask.astype(bool)
  live = jnp.concatenate([mask, jnp.zeros((b, max_new_tokens), bool)], 1)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
  causal = jnp.arange(slots)[None, :] <= jnp.arange(t)[:, None]             # [T, S]
  hidden, cache = forward(params, config, embeds, positions, causal[None] & live[:, None],
                          empty_cache(config, b, slots), 0)
  first = jnp.argmax(logits_of(params, config, hidden[:, -1]), -1).astype(jnp.int32)
  out = jnp.zeros((b, max_new_tokens), jnp.int32).at[:, 0].set(first)
  next_position = mask.sum(1)                                                # [B]

  def step(i, carry):
    out, live, cache = carry
    slot = t + i
    live = live.at[:, slot].set(True)
    x = embed_tokens(params, out[:, i])[:, None]
    hidden, cache = forward(params, config, x, (next_position + i)[:, None], live[:, None],
                            cache, slot)
    token = jnp.argmax(logits_of(params, config, hidden[:, 0]), -1).astype(jnp.int32)
    return out.at[:, i + 1].set(token), live, cache

  out, _, _ = jax.lax.fori_loop(0, max_new_tokens - 1, step, (out, live, cache))
  return out


# -- weights --------------------------------------------------------------------------

LAYER_SHAPES = {  # our name -> (Hugging Face suffix, GGUF suffix, torch shape as a function)
    "attn_norm": ("input_layernorm.weight", "attn_norm.weight", lambda c: (c.hidden_size,)),
    "wq": ("self_attn.q_proj.weight", "attn_q.weight",
           lambda c: (c.num_heads * c.head_dim, c.hidden_size)),
    "wk": ("self_attn.k_proj.weight", "attn_k.weight",
           lambda c: (c.num_kv_heads * c.head_dim, c.hidden_size)),
    "wv": ("self_attn.v_proj.weight", "attn_v.weight",
           lambda c: (c.num_kv_heads * c.head_dim, c.hidden_size)),
    "wo": ("self_attn.o_proj.weight", "attn_output.weight",
           lambda c: (c.hidden_size, c.num_heads * c.head_dim)),
    "mlp_norm": ("post_attention_layernorm.weight", "ffn_norm.weight",
                 lambda c: (c.hidden_size,)),
    "w_gate": ("mlp.gate_proj.weight", "ffn_gate.weight",
               lambda c: (c.intermediate_size, c.hidden_size)),
    "w_up": ("mlp.up_proj.weight", "ffn_up.weight",
             lambda c: (c.intermediate_size, c.hidden_size)),
    "w_down": ("mlp.down_proj.weight", "ffn_down.weight",
               lambda c: (c.hidden_size, c.intermediate_size)),
}


def _params(config: LlamaConfig, tensors: Mapping[str, np.ndarray], names: dict[str, str],
            layer_name, source: str) -> dict:
  """Stacked parameters from torch-layout tensors, every name and shape checked."""
  c = config
  expected = {names["embed"]: (c.vocab_size, c.hidden_size), names["final_norm"]: (c.hidden_size,)}
  if not c.tie_embeddings:
    expected[names["lm_head"]] = (c.vocab_size, c.hidden_size)
  for i in range(c.num_layers):
    for ours, (hf, gg, shape) in LAYER_SHAPES.items():
      expected[layer_name(i, ours)] = shape(c)
  problems = [f"{k} missing" for k in expected if k not in tensors]
  problems += [f"{k} has shape {list(tensors[k].shape)}, expected {list(s)}"
               for k, s in expected.items() if k in tensors and tuple(tensors[k].shape) != s]
  if problems:
    raise ValueError(f"{source}: " + "; ".join(problems))
  f32 = lambda a: np.asarray(a, np.float32)
  layers = {}
  for ours in LAYER_SHAPES:
    stack = np.stack([f32(tensors[layer_name(i, ours)]) for i in range(c.num_layers)])
    layers[ours] = stack if stack.ndim == 2 else np.swapaxes(stack, 1, 2)   # [L, in, out]
  params = {"embed": f32(tensors[names["embed"]]),
            "final_norm": f32(tensors[names["final_norm"]]), "layers": layers}
  if not c.tie_embeddings:
    params["lm_head"] = f32(tensors[names["lm_head"]]).T
  return jax.tree.map(jnp.asarray, params)


def hf_params(state_dict: Mapping[str, np.ndarray], config: LlamaConfig,
              source: str = "Llama weights") -> dict:
  """Parameters from Hugging Face ``LlamaForCausalLM`` tensors (``model.`` prefix optional)."""
  sd = {k.removeprefix("model."): v for k, v in state_dict.items()}
  if config.tie_embeddings and "lm_head.weight" in sd and not np.array_equal(
      sd["lm_head.weight"], sd["embed_tokens.weight"]):
    raise ValueError(f"{source}: lm_head.weight differs from embed_tokens.weight but the "
                     "config says tie_word_embeddings")
  names = {"embed": "embed_tokens.weight", "final_norm": "norm.weight", "lm_head": "lm_head.weight"}
  return _params(config, sd, names, lambda i, ours: f"layers.{i}.{LAYER_SHAPES[ours][0]}", source)


def unpermute_rotary_rows(w: np.ndarray, heads: int) -> np.ndarray:
  """Undoes the GGUF converter's row permutation of a query/key projection ``[out, in]``
  (per head, rows ``(pair, half)`` -> ``(half, pair)``)."""
  out, d_in = w.shape
  return w.reshape(heads, out // heads // 2, 2, d_in).swapaxes(1, 2).reshape(out, d_in)


def gguf_params(tensors: Mapping[str, np.ndarray], config: LlamaConfig,
                source: str = "GGUF weights") -> dict:
  """Parameters from a Llama GGUF file's (dequantized) tensors."""
  t = dict(tensors)
  for i in range(config.num_layers):
    for name, heads in (("attn_q", config.num_heads), ("attn_k", config.num_kv_heads)):
      key = f"blk.{i}.{name}.weight"
      if key in t:
        t[key] = unpermute_rotary_rows(t[key], heads)
  names = {"embed": "token_embd.weight", "final_norm": "output_norm.weight",
           "lm_head": "output.weight"}
  return _params(config, t, names, lambda i, ours: f"blk.{i}.{LAYER_SHAPES[ours][1]}", source)


def load_llama(model_dir: str) -> tuple[LlamaConfig, dict]:
  """Config and parameters from ``model_dir/config.json`` and ``model.safetensors``."""
  for name in ("config.json", "model.safetensors"):
    if not os.path.exists(os.path.join(model_dir, name)):
      raise FileNotFoundError(f"{model_dir}: no {name} (a Llama folder holds config.json and "
                              "model.safetensors)")
  with open(os.path.join(model_dir, "config.json")) as f:
    config = LlamaConfig.from_hf(json.load(f))
  path = os.path.join(model_dir, "model.safetensors")
  return config, hf_params(read_safetensors(path), config, path)
