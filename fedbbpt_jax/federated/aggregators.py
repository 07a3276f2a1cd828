"""Aggregator registry: how the server combines the clients' uploads into one update.

An aggregator is ``aggregate(deltas, weights, key) -> delta``: ``deltas`` is a pytree
with a leading client axis, ``weights`` the clients' example counts ``[C]``, ``key``
the round's server key (for randomized rules such as DP noise). A client whose weight
is 0 is absent (dropped) and every aggregator ignores it. ``server.aggregator`` names
it; users add rules (median, trimmed mean, Krum, DP) with
``AGGREGATORS.register(name, rule)``.

Two optional extensions, both backward compatible:

* an aggregator may return ``Aggregated(delta, metrics)``: ``metrics`` (a dict of
  scalars, e.g. the fraction of clipped clients) land in the round's metrics row;
* a registry entry may be ``ConfiguredAggregator(build)``: ``build(config,
  cohort_size) -> aggregate`` makes the rule from the experiment config (its
  hyper-parameters, e.g. ``server.dp``); ``make_aggregator`` resolves either kind.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fedbbpt_jax.core import Registry

PyTree = Any
Aggregator = Callable[[PyTree, jnp.ndarray, jax.Array], PyTree]


class Aggregated(NamedTuple):
  """What an aggregator may return instead of the bare delta: the delta and its metrics."""

  delta: PyTree
  metrics: dict


@dataclasses.dataclass(frozen=True)
class ConfiguredAggregator:
  """A registry entry built from the config: ``build(config, cohort_size) -> aggregate``."""

  build: Callable[[Any, int], Aggregator]


AGGREGATORS: Registry[Aggregator | ConfiguredAggregator] = Registry("aggregator")
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


def make_aggregator(name: str, config: Any = None, cohort_size: int | None = None) -> Aggregator:
  """The aggregate function registered as ``name`` (built from ``config`` if it needs one).

  Raises:
    UnknownNameError: ``name`` is not registered (naming ``server.aggregator``).
    ValueError: the entry is a ``ConfiguredAggregator`` and no config was given.
  """
  entry = AGGREGATORS.get(name, "server.aggregator")
  if isinstance(entry, ConfiguredAggregator):
    if config is None or cohort_size is None:
      raise ValueError(f"aggregator {name!r} is built from the experiment config: pass "
                       "config and cohort_size")
    return entry.build(config, cohort_size)
  return entry


def split_aggregated(out: PyTree | Aggregated) -> tuple[PyTree, dict]:
  """``(delta, metrics)`` of an aggregator's result (metrics ``{}`` for a bare delta)."""
  if isinstance(out, Aggregated):
    return out.delta, dict(out.metrics)
  return out, {}
