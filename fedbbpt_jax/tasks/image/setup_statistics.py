"""The image family's set-up statistics (``tasks/local_setup.py``): what each client
computes from its own mapping images, which the server sums.

* ``label_counts``: the unprompted black box's prediction counts ``[sources, classes]``
  on the client's first ``task.mapping_examples_per_client`` images (one call), for the
  frequency label mapping;
* ``remap_counts`` (request: the prompt's flat parameters, the round): the same counts
  with the current prompt (ILM's re-map); the outputs stay in the client's store when
  the request says ``keep``;
* ``remap_correct`` (request: the round, the current and the candidate mapping): how
  many of those kept images each mapping classifies right (ILM's guard; no query);
* ``feature_sums``: the prompt encoder's feature sum and count over the mapping images,
  for a prompt centred on the clients' mean feature (``frame_mixture``; no query).

Every entry is a count or a sum, so the server learns only what the sums reveal.
"""

from __future__ import annotations

from typing import Any, Callable, MutableMapping

import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.data import ClientData
from fedbbpt_jax.tasks.image.label_mapping import prediction_counts
from fedbbpt_jax.tasks.local_setup import CALLS, EXAMPLES, Request, Statistic, Stats, unflat_params

LABEL_COUNTS, REMAP_COUNTS, REMAP_CORRECT, FEATURE_SUMS = (
    "label_counts", "remap_counts", "remap_correct", "feature_sums")


def mapping_images(client: ClientData, m: int) -> tuple[np.ndarray, np.ndarray]:
  """The client's first ``min(m, num_examples)`` images and their labels."""
  n = min(int(m), int(client.num_examples))
  return np.asarray(client.x[:n]), np.asarray(client.y[:n])


def correct_predictions(logits: np.ndarray, labels: np.ndarray, label_map: np.ndarray) -> int:
  """How many of the images ``label_map`` classifies right from their source logits."""
  m = np.asarray(label_map, np.float64)
  return int(np.sum(np.argmax(np.asarray(logits, np.float64) @ m, -1) == labels))


def label_counts(predict: Callable[[jnp.ndarray], jnp.ndarray], m: int, num_sources: int,
                 num_classes: int) -> Statistic:
  """The ``label_counts`` statistic; ``predict(images)``: the unprompted source logits."""

  def statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    del request, store
    x, y = mapping_images(client, m)
    if not len(y):
      return {"counts": np.zeros((num_sources, num_classes)), EXAMPLES: 0, CALLS: 0}
    return {"counts": prediction_counts(np.asarray(predict(jnp.asarray(x))), y, num_classes),
            EXAMPLES: len(y), CALLS: 1}

  return statistic


def remap_counts(predict: Callable[[Any, jnp.ndarray], jnp.ndarray], like: Any, m: int,
                 num_sources: int, num_classes: int) -> Statistic:
  """The ``remap_counts`` statistic; ``predict(params, images)``: the prompted source
  logits; ``like``: parameters of the prompt's structure (to unflatten the request's)."""

  def statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    x, y = mapping_images(client, m)
    key = f"remap_{int(request['round'])}"
    if not len(y):
      return {"counts": np.zeros((num_sources, num_classes)), EXAMPLES: 0, CALLS: 0}
    logits = np.asarray(predict(unflat_params(request["params"], like), jnp.asarray(x)))
    if int(request.get("keep", 0)):
      store[key + "_logits"], store[key + "_labels"] = logits, y
    return {"counts": prediction_counts(logits, y, num_classes), EXAMPLES: len(y), CALLS: 1}

  return statistic


def remap_correct(m: int) -> Statistic:
  """The ``remap_correct`` statistic (reads what ``remap_counts`` kept, then forgets it)."""

  def statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    key = f"remap_{int(request['round'])}"
    if not min(int(m), int(client.num_examples)):
      return {"current": 0, "candidate": 0}
    if key + "_logits" not in store:
      raise RuntimeError(f"this client kept no outputs of the re-map before round "
                         f"{int(request['round']) + 1}: ask '{REMAP_COUNTS}' with keep=1 first")
    logits, labels = store.pop(key + "_logits"), store.pop(key + "_labels")
    return {name: correct_predictions(logits, labels, request[name])
            for name in ("current", "candidate")}

  return statistic


def feature_sums(features: Callable[[jnp.ndarray], jnp.ndarray], m: int) -> Statistic:
  """The ``feature_sums`` statistic; ``features(images)``: the prompt encoder's features."""

  def statistic(client: ClientData, request: Request, store: MutableMapping) -> Stats:
    del request, store
    x, _ = mapping_images(client, m)
    if not len(x):
      return {"sum": np.zeros((), np.float32), "count": 0}
    return {"sum": np.asarray(features(jnp.asarray(x))).sum(axis=0), "count": len(x)}

  return statistic
