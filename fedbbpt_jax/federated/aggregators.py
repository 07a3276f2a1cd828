"""Aggregator registry: how the server combines the clients' uploads into one update.

An aggregator is ``aggregate(deltas, weights, key) -> delta``: ``deltas`` is a pytree
with a leading client axis, ``weights`` the clients' example counts ``[C]``, ``key``
the round's server key (for randomized rules such as DP noise). ``server.aggregator``
names it; users add rules (median, trimmed mean, Krum, DP) with
``AGGREGATORS.register(name, rule)``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fedbbpt_jax.core import Registry

PyTree = Any
Aggregator = Callable[[PyTree, jnp.ndarray, jax.Array], PyTree]

AGGREGATORS: Registry[Aggregator] = Registry("aggregator")
DEFAULT_AGGREGATOR = "weighted_mean"


def weighted_mean(tree: PyTree, weights: jnp.ndarray) -> PyTree:
  """Mean over the leading axis weighted by ``weights`` (e.g. example counts)."""
  w = weights / jnp.sum(weights)
  return jax.tree.map(lambda x: jnp.tensordot(w, x, axes=1), tree)


@AGGREGATORS.register(DEFAULT_AGGREGATOR)
def example_weighted_mean(deltas: PyTree, weights: jnp.ndarray, key: jax.Array) -> PyTree:
  """FedAvg's rule: the example-weighted mean of the deltas."""
  del key
  return weighted_mean(deltas, weights)


def aggregator_name(server_cfg: Any) -> str:
  """``server.aggregator`` (absent in older configs: the weighted mean)."""
  return server_cfg.get("aggregator", DEFAULT_AGGREGATOR)
