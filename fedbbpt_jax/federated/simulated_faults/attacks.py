"""Byzantine clients in simulation: who they are and what they upload.

``attack.fraction`` of the clients are malicious: a fixed set of client ids drawn once
from the run's seed, a pure function of ``(seed, num_clients, fraction)``
(``malicious_ids``). Because the draw comes from the run's root key, a vmapped sweep
over seeds gives every member its own set inside one compiled program.

``attack.kind``:

* ``'none'``: every client is honest;
* ``'sign_flip'``: a malicious client in the cohort uploads ``-scale * delta``;
* ``'scaled'``: it uploads ``scale * delta`` (``attack.scale``);
* ``'gaussian'``: it uploads ``N(0, noise_std^2)`` noise of the delta's shape, keyed by
  the round and its client id (``attack.noise_std``);
* ``'label_flip'``: data poisoning at build time: the malicious clients' training
  labels become ``num_classes - 1 - y`` (``flip_labels``), whatever the task family;
  their uploads are then honest updates on poisoned data.

The three model-poisoning kinds act on the uploads between ``client_update`` and
``server_update`` of the simulated round (``corrupt_uploads``), for malicious ids in
the cohort only.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.data.clients import ClientData

PyTree = Any
ATTACK_KINDS = ("none", "sign_flip", "scaled", "gaussian", "label_flip")
MODEL_POISONING = ("sign_flip", "scaled", "gaussian")
MALICIOUS_KEY_FOLD = 2**31 - 3  # the root key's stream that draws the malicious ids
NOISE_KEY_FOLD = 3              # the round key's stream of the gaussian attack


def num_malicious(num_clients: int, fraction: float) -> int:
  """``round(fraction * num_clients)`` (half up): how many clients are malicious."""
  return int(np.floor(float(fraction) * int(num_clients) + 0.5))


def malicious_ids(key: jax.Array, num_clients: int, count: int) -> jnp.ndarray:
  """The ``count`` malicious client ids (sorted) of the run whose root key is ``key``.

  ``key = jax.random.key(config.seed)``; jittable and vmappable over ``key``.
  """
  if count == 0:
    return jnp.zeros((0,), jnp.int32)
  order = jax.random.permutation(jax.random.fold_in(key, MALICIOUS_KEY_FOLD), num_clients)
  return jnp.sort(order[:count]).astype(jnp.int32)


def malicious_mask(key: jax.Array, num_clients: int, count: int) -> jnp.ndarray:
  """``[num_clients]`` bool: True for the malicious clients (see ``malicious_ids``)."""
  return jnp.zeros((num_clients,), bool).at[malicious_ids(key, num_clients, count)].set(True)


def seed_malicious_ids(seed: int, num_clients: int, fraction: float) -> list[int]:
  """The malicious ids of a run with ``config.seed = seed`` (for the summary and builds)."""
  count = num_malicious(num_clients, fraction)
  return [int(i) for i in np.asarray(malicious_ids(jax.random.key(seed), num_clients, count))]


def poisoned_delta(kind: str, scale: float, noise_std: float) -> Callable:
  """``poison(delta, key) -> upload`` of one malicious client (``kind`` in MODEL_POISONING)."""
  if kind == "sign_flip":
    return lambda delta, key: jax.tree.map(lambda d: (-scale * d).astype(d.dtype), delta)
  if kind == "scaled":
    return lambda delta, key: jax.tree.map(lambda d: (scale * d).astype(d.dtype), delta)
  if kind == "gaussian":
    def noise(delta, key):
      leaves, treedef = jax.tree.flatten(delta)
      keys = jax.random.split(key, len(leaves))
      return jax.tree.unflatten(treedef, [
          (noise_std * jax.random.normal(k, d.shape, jnp.float32)).astype(d.dtype)
          for k, d in zip(keys, leaves)])
    return noise
  raise ValueError(f"attack kind {kind!r} is not a model-poisoning attack {MODEL_POISONING}")


def corrupt_uploads(kind: str, scale: float, noise_std: float, count: int,
                    num_clients: int) -> Callable:
  """``corrupt(uploads, ids, root_key, round_key) -> (uploads, attackers)``.

  Replaces the delta of every malicious client of the cohort ``ids`` by its poisoned
  upload; ``attackers`` is how many malicious clients the cohort holds.
  """
  poison = poisoned_delta(kind, scale, noise_std)

  def corrupt(uploads, ids, root_key, round_key):
    bad = malicious_mask(root_key, num_clients, count)[ids]
    noise_key = jax.random.fold_in(round_key, NOISE_KEY_FOLD)
    poisoned = jax.vmap(lambda d, i: poison(d, jax.random.fold_in(noise_key, i)))(
        uploads.delta, ids)
    delta = jax.tree.map(lambda p, d: jnp.where(bad.reshape((-1,) + (1,) * (d.ndim - 1)), p, d),
                         poisoned, uploads.delta)
    return uploads.replace(delta=delta), jnp.sum(bad).astype(jnp.int32)

  return corrupt


def flip_labels(clients: ClientData, ids: list[int] | np.ndarray, num_classes: int) -> ClientData:
  """``clients`` with the labels of clients ``ids`` mapped ``y -> num_classes - 1 - y``."""
  bad = np.zeros(clients.y.shape[0], bool)
  bad[np.asarray(ids, np.int64)] = True
  rows = jnp.asarray(bad).reshape((-1,) + (1,) * (clients.y.ndim - 1))
  y = jnp.where(rows, num_classes - 1 - clients.y, clients.y).astype(clients.y.dtype)
  return clients.replace(y=y)
