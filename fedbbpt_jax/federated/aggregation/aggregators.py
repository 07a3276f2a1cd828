"""Aggregator registry: how the server combines the clients' uploads into one update.

An aggregator is ``aggregate(deltas, weights, key) -> delta``: ``deltas`` is a pytree
with a leading client axis, ``weights`` the clients' example counts ``[C]``, ``key``
the round's server key (for randomized rules such as DP noise). ``server.aggregator``
names it; users add rules with ``AGGREGATORS.register(name, rule)``.

**A client whose weight is 0 is absent** (it dropped out of the round) and every
aggregator must ignore it: the result equals the one without that client's row. The
shapes stay fixed (absent clients are masked, never removed), so the rules jit and vmap.

Two optional extensions, both backward compatible:

* a rule with hyper-parameters is registered as a *factory* ``make(config,
  cohort_size) -> aggregate`` with ``register_configured`` (tag ``CONFIGURED``; its
  ``reads`` declares the config fields it reads, with their defaults):
  ``config`` is the experiment config (``None``: the rule's defaults, where it has
  them), ``cohort_size`` the clients sampled per round; ``make_aggregator`` builds
  either kind;
* an aggregator may return ``Aggregated(delta, metrics)``: ``metrics`` (a dict of
  scalars, e.g. DP's fraction of clipped clients) land in the round's metrics row.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from fedbbpt_jax.core import Registry

PyTree = Any
Aggregator = Callable[[PyTree, jnp.ndarray, jax.Array], PyTree]
AggregatorFactory = Callable[[Any, "int | None"], Aggregator]


class Aggregated(NamedTuple):
  """What an aggregator may return instead of the bare delta: the delta and its metrics."""

  delta: PyTree
  metrics: dict


AGGREGATORS: Registry[Aggregator | AggregatorFactory] = Registry(
    "aggregator", home="fedbbpt_jax.federated.AGGREGATORS")
DEFAULT_AGGREGATOR = "weighted_mean"
CONFIGURED = "configured"  # tag: the entry is a factory make(config, cohort_size) -> aggregate


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


def register_configured(name: str, make: AggregatorFactory, *, overwrite: bool = False,
                        reads: Mapping[str, Any] | None = None) -> None:
  """Registers ``make(config, cohort_size) -> aggregate``, a rule that reads the config.

  ``reads``: the config fields this rule reads (dotted, with their defaults), e.g.
  ``{'server.robust.trim_fraction': 0.1}``; a run with another aggregator refuses them
  when they are set (``core.fields.refuse_unread``).
  """
  AGGREGATORS.register(name, make, tags=(CONFIGURED,), overwrite=overwrite, reads=reads)


def make_aggregator(name: str, config: Any = None, cohort_size: int | None = None) -> Aggregator:
  """The aggregate function registered as ``name``; a configured rule is built from the
  experiment ``config`` and ``cohort_size`` (``None``: its defaults, where it has them).

  Raises:
    UnknownNameError: ``name`` is not registered (naming ``server.aggregator``).
  """
  entry = AGGREGATORS.get(name, "server.aggregator")
  if CONFIGURED in AGGREGATORS.tags(name):
    return entry(config, cohort_size)
  return entry


def server_section(config: Any) -> Any:
  """``config.server`` (``{}`` for ``config=None``)."""
  return {} if config is None else config.get("server", {})


def aggregator_name(server_cfg: Any) -> str:
  """``server.aggregator`` (absent in older configs: the weighted mean)."""
  return server_cfg.get("aggregator", DEFAULT_AGGREGATOR)


def split_aggregated(out: PyTree | Aggregated) -> tuple[PyTree, dict]:
  """``(delta, metrics)`` of an aggregator's result (metrics ``{}`` for a bare delta)."""
  if isinstance(out, Aggregated):
    return out.delta, dict(out.metrics)
  return out, {}
