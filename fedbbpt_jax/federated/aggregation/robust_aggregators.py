"""Byzantine-robust aggregators: median, trimmed mean, norm-bounded mean, Krum, Multi-Krum.

Each is registered in ``AGGREGATORS`` as a factory of ``config.server`` (its
hyper-parameters live in ``server.robust``) and honours the registry's convention: a
client of weight 0 is absent and ignored. Shapes stay fixed: absent clients are sorted
to the end (value ``+inf``) or given an infinite distance, and counts of present
clients are traced values, so every rule jits and vmaps.

* ``median``: coordinate-wise median of the present clients (the mean of the two middle
  values for an even count), unweighted.
* ``trimmed_mean``: per coordinate, drop the ``t = floor(beta * n)`` largest and
  ``t`` smallest of the ``n`` present values (``beta = server.robust.trim_fraction``),
  average the rest, unweighted.
* ``norm_bounded_mean``: every delta scaled to global L2 norm at most
  ``server.robust.norm_bound``, then the example-weighted mean.
* ``krum`` (Blanchard et al., NeurIPS 2017): client i's score is the sum of squared
  distances to its ``n - f - 2`` nearest other present clients (``f =
  server.robust.num_byzantine``); the lowest-scoring client's delta is the update.
* ``multi_krum``: the unweighted mean of the ``m = server.robust.multi_krum_m`` best
  clients by Krum score (0: ``n - f``). Unweighted, as in the paper: an example count is
  a client's own claim, which a Byzantine client could inflate.

With dropouts ``n`` is the number of present clients; Krum then uses
``max(n - f - 2, 1)`` neighbours (at least one while two clients are present). With
nobody present every rule returns a zero update (the round is then discarded anyway).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fedbbpt_jax.core import ConfigError, check_number, get_field
from fedbbpt_jax.federated.aggregation.aggregators import (Aggregator, client_mask, present,
                                                           register_configured, server_section,
                                                           weighted_mean)

PyTree = Any
__all__ = ["KRUM_RULES", "ROBUST_AGGREGATORS", "RobustOptions", "check", "clip_to_norm",
           "coordinate_median", "coordinate_trimmed_mean", "global_norms", "krum",
           "krum_neighbours", "krum_scores", "multi_krum", "pairwise_sq_distances",
           "robust_options", "robust_reads", "trimmed_count"]
ROBUST_AGGREGATORS = ("median", "trimmed_mean", "norm_bounded_mean", "krum", "multi_krum")
KRUM_RULES = ("krum", "multi_krum")
_FLOOR_SLACK = 1e-5  # floor(beta * n) is exact for beta given to 5 decimals


class RobustOptions(NamedTuple):
  """``config.server.robust`` with its defaults (see ``configs/common.py``)."""

  trim_fraction: float = 0.1
  norm_bound: float = 1.0
  num_byzantine: int = 1
  multi_krum_m: int = 0


def robust_options(server_cfg: Any) -> RobustOptions:
  """The ``server.robust`` fields, defaults where a config lacks them."""
  given = server_cfg.get("robust", None) or {}
  d = RobustOptions()
  return RobustOptions(trim_fraction=float(given.get("trim_fraction", d.trim_fraction)),
                       norm_bound=float(given.get("norm_bound", d.norm_bound)),
                       num_byzantine=int(given.get("num_byzantine", d.num_byzantine)),
                       multi_krum_m=int(given.get("multi_krum_m", d.multi_krum_m)))


def _sorted_present(x: jnp.ndarray, keep: jnp.ndarray) -> jnp.ndarray:
  """``x [C, ...]`` sorted over clients with the absent ones last (as ``+inf``)."""
  return jnp.sort(jnp.where(client_mask(keep, x), x, jnp.inf), axis=0)


def coordinate_median(deltas: PyTree, weights: jnp.ndarray) -> PyTree:
  """Coordinate-wise median over the present clients (unweighted)."""
  keep = present(weights)
  n = jnp.sum(keep)
  lo, hi = jnp.maximum((n - 1) // 2, 0), jnp.maximum(n // 2, 0)

  def leaf(x):
    s = _sorted_present(x, keep)
    mid = (jnp.take(s, lo, axis=0) + jnp.take(s, hi, axis=0)) / 2
    return jnp.where(n > 0, mid, 0).astype(x.dtype)

  return jax.tree.map(leaf, deltas)


def trimmed_count(beta: float, n: jnp.ndarray) -> jnp.ndarray:
  """``floor(beta * n)``: values trimmed at each end."""
  return jnp.floor(beta * n + _FLOOR_SLACK).astype(jnp.int32)


def coordinate_trimmed_mean(deltas: PyTree, weights: jnp.ndarray, beta: float) -> PyTree:
  """Per coordinate, the mean of the present values without the ``floor(beta n)`` largest
  and smallest (unweighted)."""
  keep = present(weights)
  n = jnp.sum(keep)
  t = trimmed_count(beta, n)
  kept = n - 2 * t

  def leaf(x):
    s = _sorted_present(x, keep)
    rank = client_mask(jnp.arange(x.shape[0]), x)
    inner = (rank >= t) & (rank < n - t)
    total = jnp.sum(jnp.where(inner, s, 0), axis=0)
    return jnp.where(kept > 0, total / jnp.maximum(kept, 1), 0).astype(x.dtype)

  return jax.tree.map(leaf, deltas)


def global_norms(deltas: PyTree) -> jnp.ndarray:
  """``[C]``: every client's L2 norm over the whole pytree."""
  squares = [jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1)
             for x in jax.tree.leaves(deltas)]
  return jnp.sqrt(sum(squares))


def clip_to_norm(deltas: PyTree, bound: float) -> PyTree:
  """Every client's delta scaled to global L2 norm at most ``bound``."""
  norms = global_norms(deltas)
  factor = jnp.where(norms > bound, bound / jnp.where(norms > 0, norms, 1), 1.0)
  return jax.tree.map(lambda x: x * client_mask(factor, x).astype(x.dtype), deltas)


def pairwise_sq_distances(deltas: PyTree) -> jnp.ndarray:
  """``[C, C]`` squared L2 distances between the clients' whole deltas (one row at a time:
  memory ``C x P``, not ``C x C x P``)."""
  flat = jnp.concatenate([x.reshape(x.shape[0], -1).astype(jnp.float32)
                          for x in jax.tree.leaves(deltas)], axis=1)
  return jax.lax.map(lambda row: jnp.sum(jnp.square(flat - row), axis=1), flat)


def krum_neighbours(num_clients: int, num_byzantine: int) -> int:
  """``n - f - 2``, Krum's neighbour count for a full cohort; ``ConfigError`` below 1."""
  k = int(num_clients) - int(num_byzantine) - 2
  if k < 1:
    raise ConfigError(f"Krum needs n - f - 2 >= 1: a cohort of n={num_clients} clients "
                      f"(config.server.cohort_size, 0 = config.data.num_clients) "
                      f"with config.server.robust.num_byzantine={num_byzantine} gives {k}")
  return k


def krum_scores(deltas: PyTree, weights: jnp.ndarray, num_byzantine: int) -> jnp.ndarray:
  """``[C]`` Krum scores: sum of squared distances to the ``n - f - 2`` nearest other present
  clients (at least 1 while two are present); ``+inf`` for absent clients."""
  keep = present(weights)
  c = keep.shape[0]
  n = jnp.sum(keep)
  k = jnp.maximum(n - num_byzantine - 2, jnp.minimum(1, n - 1))
  pair = keep[:, None] & keep[None, :] & ~jnp.eye(c, dtype=bool)
  d = jnp.sort(jnp.where(pair, pairwise_sq_distances(deltas), jnp.inf), axis=1)
  nearest = jnp.sum(jnp.where(jnp.arange(c)[None, :] < k, d, 0), axis=1)
  return jnp.where(keep, nearest, jnp.inf)


def krum(deltas: PyTree, weights: jnp.ndarray, num_byzantine: int) -> PyTree:
  """The delta of the present client with the lowest Krum score."""
  krum_neighbours(weights.shape[0], num_byzantine)
  n = jnp.sum(present(weights))
  best = jnp.argmin(krum_scores(deltas, weights, num_byzantine))
  return jax.tree.map(lambda x: jnp.where(n > 0, x[best], 0).astype(x.dtype), deltas)


def multi_krum(deltas: PyTree, weights: jnp.ndarray, num_byzantine: int, m: int) -> PyTree:
  """Unweighted mean of the ``m`` best present clients by Krum score (``m = 0``: ``n - f``)."""
  krum_neighbours(weights.shape[0], num_byzantine)
  n = jnp.sum(present(weights))
  count = jnp.clip(m if m > 0 else n - num_byzantine, 1, jnp.maximum(n, 1))
  order = jnp.argsort(krum_scores(deltas, weights, num_byzantine), stable=True)
  rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0]))
  chosen = (rank < count) & present(weights)

  def leaf(x):
    total = jnp.sum(jnp.where(client_mask(chosen, x), x, 0), axis=0)
    return jnp.where(n > 0, total / count, 0).astype(x.dtype)

  return jax.tree.map(leaf, deltas)


def make_median(config: Any, cohort_size: int | None = None) -> Aggregator:
  del config, cohort_size
  return lambda deltas, weights, key: coordinate_median(deltas, weights)


def make_trimmed_mean(config: Any, cohort_size: int | None = None) -> Aggregator:
  beta = robust_options(server_section(config)).trim_fraction
  return lambda deltas, weights, key: coordinate_trimmed_mean(deltas, weights, beta)


def make_norm_bounded_mean(config: Any, cohort_size: int | None = None) -> Aggregator:
  bound = robust_options(server_section(config)).norm_bound
  return lambda deltas, weights, key: weighted_mean(clip_to_norm(deltas, bound), weights)


def make_krum(config: Any, cohort_size: int | None = None) -> Aggregator:
  f = robust_options(server_section(config)).num_byzantine
  return lambda deltas, weights, key: krum(deltas, weights, f)


def make_multi_krum(config: Any, cohort_size: int | None = None) -> Aggregator:
  opts = robust_options(server_section(config))
  return lambda deltas, weights, key: multi_krum(deltas, weights, opts.num_byzantine,
                                                 opts.multi_krum_m)


# The server.robust fields each rule reads (the others refuse them when set).
_ROBUST_FIELDS = {"median": (), "trimmed_mean": ("trim_fraction",),
                  "norm_bounded_mean": ("norm_bound",), "krum": ("num_byzantine",),
                  "multi_krum": ("num_byzantine", "multi_krum_m")}


def robust_reads(name: str) -> dict[str, Any]:
  """``{'server.robust.<field>': default}`` of the fields robust rule ``name`` reads."""
  return {f"server.robust.{f}": getattr(RobustOptions(), f) for f in _ROBUST_FIELDS[name]}


for _name, _make in zip(ROBUST_AGGREGATORS, (make_median, make_trimmed_mean,
                                             make_norm_bounded_mean, make_krum,
                                             make_multi_krum)):
  register_configured(_name, _make, reads=robust_reads(_name))


def check(config: Any, cohort_size: int) -> None:
  """``server.robust`` fields and, for Krum, ``n - f - 2 >= 1`` at ``cohort_size``.

  Raises:
    ConfigError: naming the field, its value and the allowed range.
  """
  server = get_field(config, "server")
  if "robust" in server:
    check_number(config, "server.robust.trim_fraction", low=0, high=0.5, high_inclusive=False,
                 hint="the fraction trimmed at EACH end")
    check_number(config, "server.robust.norm_bound", low=0, low_inclusive=False)
    check_number(config, "server.robust.num_byzantine", low=0, integer=True)
    check_number(config, "server.robust.multi_krum_m", low=0, integer=True)
  name = server.get("aggregator", "")
  if name in KRUM_RULES:
    opts = robust_options(server)
    krum_neighbours(cohort_size, opts.num_byzantine)
    if name == "multi_krum" and opts.multi_krum_m > cohort_size - opts.num_byzantine:
      raise ConfigError(f"config.server.robust.multi_krum_m={opts.multi_krum_m} must be <= "
                        f"n - f = {cohort_size - opts.num_byzantine} (cohort of {cohort_size}, "
                        f"config.server.robust.num_byzantine={opts.num_byzantine}); "
                        "0 = n - f")

