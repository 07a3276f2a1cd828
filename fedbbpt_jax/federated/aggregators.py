"""Aggregator registry: how the server combines the clients' uploads into one update.

An aggregator is ``aggregate(deltas, weights, key) -> delta``: ``deltas`` is a pytree
with a leading client axis, ``weights`` the clients' example counts ``[C]``, ``key``
the round's server key (for randomized rules such as DP noise). ``server.aggregator``
names it; users add rules with ``AGGREGATORS.register(name, rule)``.

**A client whose weight is 0 is absent** (it dropped out of the round) and every
aggregator must ignore it: the result equals the one without that client's row. The
shapes stay fixed (absent clients are masked, never removed), so the rules jit and vmap.

A rule with hyper-parameters is registered as a *factory* ``make(server_cfg) ->
aggregate`` with ``register_configured`` (tag ``CONFIGURED``); ``make_aggregator``
builds either kind from the config's ``server`` section.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fedbbpt_jax.core import Registry

PyTree = Any
Aggregator = Callable[[PyTree, jnp.ndarray, jax.Array], PyTree]
AggregatorFactory = Callable[[Any], Aggregator]

AGGREGATORS: Registry[Aggregator | AggregatorFactory] = Registry("aggregator")
DEFAULT_AGGREGATOR = "weighted_mean"
CONFIGURED = "configured"  # tag: the entry is a factory make(server_cfg) -> aggregate


def present(weights: jnp.ndarray) -> jnp.ndarray:
  """``[C]`` bool: the clients that reported (weight > 0)."""
  return weights > 0


def client_mask(mask: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
  """``mask [C]`` shaped to broadcast against ``x [C, ...]``."""
  return mask.reshape(mask.shape + (1,) * (x.ndim - 1))


def weighted_mean(tree: PyTree, weights: jnp.ndarray) -> PyTree:
  """Mean over the leading axis weighted by ``weights`` (e.g. example counts).

  Clients of weight 0 are ignored (their rows are masked out, so even a non-finite
  row contributes nothing); with no weight at all the result is zero.
  """
  total = jnp.sum(weights)
  w = jnp.where(total > 0, weights / jnp.where(total > 0, total, 1), 0)
  keep = present(weights)
  return jax.tree.map(
      lambda x: jnp.tensordot(w.astype(x.dtype), jnp.where(client_mask(keep, x), x, 0),
                              axes=1), tree)


@AGGREGATORS.register(DEFAULT_AGGREGATOR)
def example_weighted_mean(deltas: PyTree, weights: jnp.ndarray, key: jax.Array) -> PyTree:
  """FedAvg's rule: the example-weighted mean of the deltas."""
  del key
  return weighted_mean(deltas, weights)


def register_configured(name: str, make: AggregatorFactory, *, overwrite: bool = False) -> None:
  """Registers ``make(server_cfg) -> aggregate``, a rule that reads hyper-parameters."""
  AGGREGATORS.register(name, make, tags=(CONFIGURED,), overwrite=overwrite)


def make_aggregator(name: str, server_cfg: Any = None) -> Aggregator:
  """The aggregator ``name``; a configured one is built from ``server_cfg`` (``config.server``,
  ``None``: its defaults)."""
  entry = AGGREGATORS.get(name, "server.aggregator")
  if CONFIGURED in AGGREGATORS.tags(name):
    return entry({} if server_cfg is None else server_cfg)
  return entry


def aggregator_name(server_cfg: Any) -> str:
  """``server.aggregator`` (absent in older configs: the weighted mean)."""
  return server_cfg.get("aggregator", DEFAULT_AGGREGATOR)
