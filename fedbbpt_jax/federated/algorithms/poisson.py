"""Poisson cohorts: every client joins a round independently with probability ``q``.

With ``q = cohort_size / num_clients`` the number of members is Binomial(N, q): its
mean is ``qN = cohort_size`` and it varies from round to round. JAX programs need
static shapes, so the round draws every client's membership, then places the members
in a cohort of static **capacity** ``C``; the slots left over are empty (id -1, zero
upload, weight 0: every aggregator ignores them, and they run no local step, see
``parallel.partial_cohort``).

Capacity rule (``capacity``): ``C = ceil(qN + 8 sqrt(N q (1 - q)))``, rounded up to a
multiple of the chunk the members run in, and never above ``N`` (with ``C = N`` nothing
can overflow). A cohort larger than ``C`` (an *overflow*) is more than 8 standard
deviations above its mean: the binomial's upper tail ``P(members > C)`` is 8e-14 a round
for ``qN = 100`` of ``N = 1,000`` (7e-15 for 200, 1e-15 for 400; 3e-11 for ``qN = 10``).
It is never silent: the members kept are a uniformly random ``C`` of them (the others sit
the round out, as if dropped), and the round reports ``cohort_overflow`` (the members
left out), which the run logs as a warning.

The draws depend only on the round's sampling key, so a resumed run samples exactly
what an uninterrupted one would. ``q = 1`` (every client) is the full cohort: the
runs take the plain full-cohort path (``poisson_cohorts`` is then False).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.core import ConfigError, check_choice, get_field

SAMPLINGS = ("fixed", "poisson")
FOLLOW_DP = ""                 # server.sampling: the accountant's (server.dp.sampling) under
#                                DP, else 'fixed'
CAPACITY_SDS = 8.0             # capacity = mean + this many standard deviations
EMPTY_SLOT = -1                # the id of an empty slot of a Poisson cohort
MEMBERSHIP_FOLD, ORDER_FOLD = 3, 4  # streams of the round's sampling key


def capacity(num_clients: int, cohort_size: int, chunk: int = 1) -> int:
  """Static slots of a Poisson cohort of expected size ``cohort_size`` (module docstring)."""
  q = cohort_size / num_clients
  sd = math.sqrt(num_clients * q * (1 - q))
  slots = math.ceil(cohort_size + CAPACITY_SDS * sd)
  slots = chunk * math.ceil(slots / chunk)
  return min(num_clients, slots)


def chunk_size(slots: int, requested: int = 0) -> int:
  """Clients per vmapped chunk: ``requested``, or about ``sqrt(slots)`` when 0."""
  return max(1, min(slots, requested or math.ceil(math.sqrt(slots))))


def members(key: jax.Array, num_clients: int, q: float) -> jnp.ndarray:
  """``[N]`` bool: who joins the round (independent Bernoulli(q) per client)."""
  return jax.random.bernoulli(jax.random.fold_in(key, MEMBERSHIP_FOLD), q, (num_clients,))


@dataclasses.dataclass(frozen=True)
class PoissonSelector:
  """``select(key, data) -> (ids, cohort)`` of a Poisson cohort of static ``slots``.

  ``ids [slots]``: the members ascending, then ``EMPTY_SLOT`` for empty slots; ``cohort``:
  their data (an empty slot holds client 0's rows, never used).
  """

  num_clients: int
  cohort_size: int
  slots: int

  @property
  def q(self) -> float:
    return self.cohort_size / self.num_clients

  def ids(self, key: jax.Array) -> jnp.ndarray:
    """The cohort's ids (``slots`` of them, members first, ascending)."""
    joined = members(key, self.num_clients, self.q)
    # A uniformly random order of the members, so that an overflow keeps a random subset.
    order = jax.random.permutation(jax.random.fold_in(key, ORDER_FOLD), self.num_clients)
    ranked = order[jnp.argsort(~joined[order], stable=True)][:self.slots]
    return packed_ids(joined[ranked], ranked, self.num_clients)

  def overflow(self, key: jax.Array) -> jnp.ndarray:
    """Members beyond the capacity (left out of the round): 0 but astronomically rarely."""
    count = jnp.sum(members(key, self.num_clients, self.q))
    return jnp.maximum(count - self.slots, 0).astype(jnp.int32)

  def __call__(self, key: jax.Array, data: Any) -> tuple[jnp.ndarray, Any]:
    ids = self.ids(key)
    rows = jnp.maximum(ids, 0)
    return ids, jax.tree.map(lambda a: a[rows], data)


def packed_ids(kept: jnp.ndarray, ranked: jnp.ndarray, num_clients: int) -> jnp.ndarray:
  """The kept ids ascending, then ``EMPTY_SLOT`` (sorting puts the fill ``N`` last)."""
  ordered = jnp.sort(jnp.where(kept, ranked, num_clients))
  return jnp.where(ordered < num_clients, ordered, EMPTY_SLOT)


def cohort_sampling(config: Any) -> str:
  """How the run samples its cohorts: ``server.sampling``, or with ``''`` (default) the
  accountant's ``server.dp.sampling`` when DP is on, else ``'fixed'``."""
  server = get_field(config, "server")
  chosen = server.get("sampling", FOLLOW_DP)
  if chosen != FOLLOW_DP:
    return chosen
  if server.get("aggregator", "") == "dp_gaussian" and "dp" in server:
    return server.dp.sampling
  return "fixed"


def expected_cohort(config: Any) -> tuple[int, int]:
  """``(cohort_size, num_clients)`` (``server.cohort_size=0``: every client)."""
  num_clients = int(get_field(config, "data.num_clients"))
  return int(get_field(config, "server.cohort_size") or num_clients), num_clients


def poisson_cohorts(config: Any) -> bool:
  """Whether the run draws Poisson cohorts of variable size (Poisson with ``q < 1``)."""
  cohort, population = expected_cohort(config)
  return cohort_sampling(config) == "poisson" and cohort < population


def check_sampling(config: Any) -> None:
  """``server.sampling`` and its agreement with the accountant, naming the fields.

  Raises:
    ConfigError: an unknown value; a sampling the accountant does not assume (DP on and
      ``server.sampling`` differs from ``server.dp.sampling``); Poisson cohorts with an
      algorithm other than fedbbpt or the ``shard`` backend.
  """
  server = get_field(config, "server")
  if "sampling" in server and server.sampling != FOLLOW_DP:
    check_choice(config, "server.sampling", SAMPLINGS,
                 hint="'' = server.dp.sampling when server.aggregator='dp_gaussian', else "
                      "'fixed'")
    if server.get("aggregator", "") == "dp_gaussian" and "dp" in server \
        and server.dp.sampling != server.sampling:
      raise ConfigError(
          f"config.server.sampling={server.sampling!r} (how the simulation draws cohorts) "
          f"contradicts config.server.dp.sampling={server.dp.sampling!r} (what the privacy "
          "accountant assumes): set both to the same value, or server.sampling='' to follow "
          "server.dp.sampling")
  if not poisson_cohorts(config):
    return
  algorithm = get_field(config, "server.algorithm")
  if algorithm != "fedbbpt":
    raise ConfigError(f"config.server.sampling resolves to 'poisson' (variable cohorts), which "
                      f"only server.algorithm='fedbbpt' runs, not {algorithm!r}; use "
                      "sampling 'fixed' or server.cohort_size=0")
  backend = config.get("parallel", {}).get("backend", "vmap")
  if backend == "shard":
    raise ConfigError("config.parallel.backend='shard' cannot run Poisson cohorts "
                      "(config.server.sampling resolves to 'poisson'); use 'vmap' "
                      "(chunked, config.parallel.cohort_chunk) or 'loop'")


def refuse_poisson(config: Any, where: str) -> None:
  """``ConfigError`` when the run draws Poisson cohorts and ``where`` cannot run them."""
  if poisson_cohorts(config):
    raise ConfigError(f"config.server.sampling resolves to 'poisson' (cohorts of variable "
                      f"size), which {where} does not run; use sampling 'fixed' "
                      "(config.server.sampling and config.server.dp.sampling) or a plain "
                      "simulation (experiments.train)")
