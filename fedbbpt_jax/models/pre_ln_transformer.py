"""The pre-LayerNorm transformer block shared by ViT, ViT-MAE and both CLIP towers (Flax).

One block is ``x + attention(norm1(x))`` followed by ``x + mlp(norm2(x))``: multi-head
self-attention with separate ``query`` / ``key`` / ``value`` projections and an
``attention_out`` projection, then ``mlp_out(act(mlp_in(x)))``. Inference only (no
dropout). An optional additive attention bias ``[B or 1, 1, Lq, Lk]`` carries causal and
padding masks (0 where a key is seen, a large negative number where it is not).

The LayerNorms compute the variance as the mean squared deviation (not
``E[x^2] - E[x]^2``), as PyTorch does, so ports match their references to float32
rounding.

Example:
    >>> spec = BlockSpec(hidden_size=768, num_heads=12, intermediate_size=3072,
    ...                  layer_norm_eps=1e-5, activation="quick_gelu")
    >>> hidden = PreLNEncoder(spec, num_layers=12).apply(variables, tokens)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ACTIVATIONS", "BlockSpec", "PreLNBlock", "PreLNEncoder", "layer_norm", "quick_gelu"]


def quick_gelu(x: jnp.ndarray) -> jnp.ndarray:
  """OpenAI CLIP's GELU approximation ``x * sigmoid(1.702 x)``."""
  return x * jax.nn.sigmoid(1.702 * x)


# Hugging Face ``hidden_act`` name -> function.
ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "quick_gelu": quick_gelu,
}


@dataclass(frozen=True)
class BlockSpec:
  """Static shape of one pre-LayerNorm block.

  Attributes:
    hidden_size: Width of the residual stream.
    num_heads: Attention heads (``hidden_size`` must be divisible by it).
    intermediate_size: Width of the MLP.
    layer_norm_eps: LayerNorm epsilon.
    activation: A key of ``ACTIVATIONS`` (``'gelu'`` is the exact erf GELU).
    qkv_bias: Whether the query / key / value projections have biases.
  """

  hidden_size: int
  num_heads: int
  intermediate_size: int
  layer_norm_eps: float
  activation: str
  qkv_bias: bool = True

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                       f"num_heads={self.num_heads}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation={self.activation!r} is not one of {sorted(ACTIVATIONS)}")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads


def layer_norm(eps: float, name: str) -> nn.LayerNorm:
  """A LayerNorm with PyTorch's variance (mean squared deviation)."""
  return nn.LayerNorm(epsilon=eps, use_fast_variance=False, name=name)


class PreLNBlock(nn.Module):
  """One pre-LayerNorm block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

  spec: BlockSpec

  @nn.compact
  def __call__(self, x: jnp.ndarray, bias: jnp.ndarray | None = None) -> jnp.ndarray:
    """Applies the block to ``x [B, L, D]`` under the additive attention ``bias``."""
    s = self.spec
    batch, length, _ = x.shape
    h = layer_norm(s.layer_norm_eps, "norm1")(x)

    def heads(name: str) -> jnp.ndarray:
      y = nn.Dense(s.hidden_size, use_bias=s.qkv_bias, name=name)(h)
      return y.reshape(batch, length, s.num_heads, s.head_dim)

    q, k, v = heads("query"), heads("key"), heads("value")
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) * np.float32(s.head_dim ** -0.5)
    if bias is not None:
      scores = scores + bias
    weights = jax.nn.softmax(scores, axis=-1)
    attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, s.hidden_size)
    x = x + nn.Dense(s.hidden_size, name="attention_out")(attended)
    h = layer_norm(s.layer_norm_eps, "norm2")(x)
    h = ACTIVATIONS[s.activation](nn.Dense(s.intermediate_size, name="mlp_in")(h))
    return x + nn.Dense(s.hidden_size, name="mlp_out")(h)


class PreLNEncoder(nn.Module):
  """``num_layers`` pre-LayerNorm blocks named ``layer_0`` ... (no final norm)."""

  spec: BlockSpec
  num_layers: int

  @nn.compact
  def __call__(self, x: jnp.ndarray, bias: jnp.ndarray | None = None) -> jnp.ndarray:
    for i in range(self.num_layers):
      x = PreLNBlock(self.spec, name=f"layer_{i}")(x, bias)
    return x
