"""A GPT-2 family causal LM in Flax, its offline weight loader, and greedy decoding that
starts from input embeddings (soft prompt + prompt tokens).

Architecture (GPT-2): learned token and position embeddings; ``n_layer`` pre-LayerNorm
blocks of causal multi-head self-attention and a 4x MLP with the tanh GELU; a final
LayerNorm; logits from the token embedding matrix (tied head). Rows are LEFT-padded:
``mask`` marks the real positions, positions count real tokens only, and padded keys
are never attended to, so a row's outputs do not depend on the padding.

Weights come from a local folder (``config.json`` and ``model.safetensors``) with
Hugging Face names (``wte.weight``, ``h.N.attn.c_attn.weight``, ...; an optional
``transformer.`` prefix; ``lm_head.weight``, if present, must equal ``wte``). Every
expected tensor is checked by name and shape. No hub access.

``greedy_generate`` is what an InstructZero-style instruction generator needs: a
batch of rows, each ``[soft tokens; prompt tokens]`` as embeddings, extended by
``max_new_tokens`` argmax tokens in one compiled loop.

Example:
    >>> model, variables = load_gpt2("/models/tiny-gpt2")
    >>> embeds = token_embeddings(variables, ids)            # [B, L, D]
    >>> new_ids = greedy_generate(model, variables, embeds, mask, max_new_tokens=16)
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models.minilm import read_safetensors


@dataclasses.dataclass(frozen=True)
class GPT2Config:
  """The fields of a GPT-2 ``config.json`` the model uses."""

  vocab_size: int
  n_positions: int
  n_embd: int
  n_layer: int
  n_head: int
  layer_norm_epsilon: float = 1e-5

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "GPT2Config":
    act = d.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"config.json: activation_function={act!r}; only the tanh GELU of "
                       "GPT-2 ('gelu_new') is implemented")
    missing = [k for k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
               if k not in d]
    if missing:
      raise ValueError(f"config.json lacks {missing}")
    return cls(int(d["vocab_size"]), int(d["n_positions"]), int(d["n_embd"]),
               int(d["n_layer"]), int(d["n_head"]), float(d.get("layer_norm_epsilon", 1e-5)))


class Block(nn.Module):
  """Pre-LayerNorm causal self-attention and MLP (GPT-2)."""

  config: GPT2Config

  @nn.compact
  def __call__(self, x: jnp.ndarray, attend: jnp.ndarray) -> jnp.ndarray:
    c = self.config
    b, length, d = x.shape
    h = nn.LayerNorm(epsilon=c.layer_norm_epsilon, name="ln_1")(x)
    qkv = nn.Dense(3 * d, name="c_attn")(h)
    q, k, v = jnp.split(qkv.reshape(b, length, 3, c.n_head, d // c.n_head), 3, axis=2)
    q, k, v = (t[:, :, 0] for t in (q, k, v))                     # [B, L, H, Dh]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // c.n_head)
    scores = jnp.where(attend[:, None], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    attn = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, length, d)
    x = x + nn.Dense(d, name="c_proj")(attn)
    h = nn.LayerNorm(epsilon=c.layer_norm_epsilon, name="ln_2")(x)
    h = nn.Dense(4 * d, name="c_fc")(h)
    h = jax.nn.gelu(h, approximate=True)
    return x + nn.Dense(d, name="mlp_c_proj")(h)


class GPT2LM(nn.Module):
  """GPT-2 causal LM: ``(embeds [B, L, D] or None, ids, mask) -> logits [B, L, V]``."""

  config: GPT2Config

  def setup(self):
    c = self.config
    self.wte = nn.Embed(c.vocab_size, c.n_embd, name="wte")
    self.wpe = nn.Embed(c.n_positions, c.n_embd, name="wpe")
    self.blocks = [Block(c, name=f"h_{i}") for i in range(c.n_layer)]
    self.ln_f = nn.LayerNorm(epsilon=c.layer_norm_epsilon, name="ln_f")

  def embed_tokens(self, ids: jnp.ndarray) -> jnp.ndarray:
    return self.wte(ids)

  def __call__(self, embeds: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Logits of every position; ``embeds`` are token (or soft) embeddings, left-padded,
    ``mask`` [B, L] marks real positions."""
    mask = mask.astype(bool)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    length = embeds.shape[1]
    causal = jnp.tril(jnp.ones((length, length), bool))
    attend = causal[None] & mask[:, None, :]                      # [B, Lq, Lk]
    x = embeds + self.wpe(positions)
    for block in self.blocks:
      x = block(x, attend)
    return self.wte.attend(self.ln_f(x))


def token_embeddings(model: GPT2LM, variables: Any, ids: jnp.ndarray) -> jnp.ndarray:
  """The token embeddings of ``ids`` (what a soft prompt is prepended to)."""
  return model.apply(variables, ids, method=GPT2LM.embed_tokens)


def greedy_generate(model: GPT2LM, variables: Any, embeds: jnp.ndarray, mask: jnp.ndarray,
                    max_new_tokens: int) -> jnp.ndarray:
  """``[B, max_new_tokens]`` argmax continuations of left-padded ``embeds``/``mask``.

  The buffer holds the prompt and the tokens generated so far; each step scores the
  whole buffer (no key/value cache: instruction generators are small and short) and
  appends the argmax of the last real position. Jittable.
  """
  b, length, d = embeds.shape
  total = length + max_new_tokens
  buffer = jnp.concatenate([embeds, jnp.zeros((b, max_new_tokens, d), embeds.dtype)], 1)
  live = jnp.concatenate([mask.astype(bool), jnp.zeros((b, max_new_tokens), bool)], 1)
  out = jnp.zeros((b, max_new_tokens), jnp.int32)
  if total > model.config.n_positions:
    raise ValueError(f"prompt length {length} + max_new_tokens {max_new_tokens} exceeds the "
                     f"model's n_positions={model.config.n_positions}")

  def step(t, carry):
    buffer, live, out = carry
    logits = model.apply(variables, buffer, live)[:, length + t - 1]   # last filled slot
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    buffer = buffer.at[:, length + t].set(token_embeddings(model, variables, token))
    live = live.at[:, length + t].set(True)
    return buffer, live, out.at[:, t].set(token)

  _, _, out = jax.lax.fori_loop(0, max_new_tokens, step, (buffer, live, out))
  return out


# -- weights --------------------------------------------------------------------------

def _strip(sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {k.removeprefix("transformer."): v for k, v in sd.items()}


def gpt2_variables(state_dict: Mapping[str, np.ndarray], config: GPT2Config) -> dict:
  """Flax variables from Hugging Face GPT-2 tensors (Conv1D weights are ``[in, out]``).

  Raises:
    ValueError: a tensor is missing or of the wrong shape (named), or an untied
      ``lm_head.weight``.
  """
  sd = _strip(state_dict)
  d, v = config.n_embd, config.vocab_size
  expected = {"wte.weight": (v, d), "wpe.weight": (config.n_positions, d),
              "ln_f.weight": (d,), "ln_f.bias": (d,)}
  for i in range(config.n_layer):
    p = f"h.{i}."
    expected.update({p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
                     p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
                     p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
                     p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
                     p + "mlp.c_fc.weight": (d, 4 * d), p + "mlp.c_fc.bias": (4 * d,),
                     p + "mlp.c_proj.weight": (4 * d, d), p + "mlp.c_proj.bias": (d,)})
  problems = [f"{k} missing" for k in expected if k not in sd]
  problems += [f"{k} has shape {list(sd[k].shape)}, expected {list(s)}"
               for k, s in expected.items() if k in sd and tuple(sd[k].shape) != s]
  if "lm_head.weight" in sd and not np.array_equal(sd["lm_head.weight"], sd["wte.weight"]):
    problems.append("lm_head.weight differs from wte.weight (only a tied head is supported)")
  if problems:
    raise ValueError("GPT-2 weights: " + "; ".join(problems))
  f32 = lambda a: np.asarray(a, np.float32)
  dense = lambda p: {"kernel": f32(sd[p + ".weight"]), "bias": f32(sd[p + ".bias"])}
  norm = lambda p: {"scale": f32(sd[p + ".weight"]), "bias": f32(sd[p + ".bias"])}
  params = {"wte": {"embedding": f32(sd["wte.weight"])},
            "wpe": {"embedding": f32(sd["wpe.weight"])}, "ln_f": norm("ln_f")}
  for i in range(config.n_layer):
    p = f"h.{i}."
    params[f"h_{i}"] = {"ln_1": norm(p + "ln_1"), "c_attn": dense(p + "attn.c_attn"),
                        "c_proj": dense(p + "attn.c_proj"), "ln_2": norm(p + "ln_2"),
                        "c_fc": dense(p + "mlp.c_fc"), "mlp_c_proj": dense(p + "mlp.c_proj")}
  return {"params": jax.tree.map(jnp.asarray, params)}


def load_gpt2(model_dir: str) -> tuple[GPT2LM, dict]:
  """The model and its variables from ``model_dir/config.json`` and ``model.safetensors``.

  Raises:
    FileNotFoundError: naming the missing file.
  """
  for name in ("config.json", "model.safetensors"):
    if not os.path.exists(os.path.join(model_dir, name)):
      raise FileNotFoundError(f"{model_dir}: no {name} (a GPT-2 folder holds config.json and "
                              "model.safetensors)")
  with open(os.path.join(model_dir, "config.json")) as f:
    config = GPT2Config.from_dict(json.load(f))
  variables = gpt2_variables(read_safetensors(os.path.join(model_dir, "model.safetensors")),
                             config)
  return GPT2LM(config), variables
