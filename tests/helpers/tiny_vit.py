"""A tiny ViT-like [CLS] encoder with the ``load_vit`` contract, for the prompt tests.

``load_vit(folder) -> (cls_features, dim)``, where ``cls_features(pixel_values [B, S, S, 3])
-> [B, dim]``: 16 x 16 patches embedded by a fixed random matrix, a [CLS] token, one
attention layer in which [CLS] attends to every token, and its output (random weights,
seed 0; the folder is not read). It stands in for the ported ViT-B/16 (``D = 768``) where
only the interface and the feature width matter.
"""

import jax
import jax.numpy as jnp

PATCH = 16
DIM = 768


def load_vit(folder: str):
  """``(cls_features, 768)``; ``folder`` is ignored (no weights are read)."""
  del folder
  k_embed, k_cls, k_query = jax.random.split(jax.random.key(0), 3)
  embed = jax.random.normal(k_embed, (PATCH * PATCH * 3, DIM)) / jnp.sqrt(PATCH * PATCH * 3.0)
  cls_token = jax.random.normal(k_cls, (DIM,))
  query = jax.random.normal(k_query, (DIM,)) / jnp.sqrt(DIM * 1.0)

  def cls_features(pixel_values):
    b, s, _, c = pixel_values.shape
    n = s // PATCH
    patches = pixel_values.reshape(b, n, PATCH, n, PATCH, c).transpose(0, 1, 3, 2, 4, 5)
    tokens = patches.reshape(b, n * n, PATCH * PATCH * c) @ embed
    tokens = jnp.concatenate([jnp.broadcast_to(cls_token, (b, 1, DIM)), tokens], axis=1)
    weights = jax.nn.softmax(tokens @ query, axis=-1)
    return jnp.tanh(jnp.einsum("bt,btd->bd", weights, tokens))

  return cls_features, DIM
