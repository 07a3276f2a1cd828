"""The ``dp_gaussian`` aggregator: DP-FedAvg's clipped sum plus Gaussian noise.

DP-FedAvg (McMahan et al., "Learning Differentially Private Recurrent Language Models",
ICLR 2018), client level: with clip norm ``S`` and noise multiplier ``z``,

    delta = ( sum_{i present} clip_S(d_i)  +  N(0, (z S)^2 I) ) / m,

where ``clip_S(d) = d * min(1, S / ||d||)`` with ``||d||`` the global L2 norm of the
client's whole update pytree, and ``m`` the FIXED expected cohort size (not the
number of clients that actually reported): ``server.cohort_size``, which under Poisson
sampling is ``qN`` while the realised cohort varies (McMahan et al.'s fixed-denominator
estimator; it keeps the sensitivity ``S / m`` whatever the realised size). Every present
client counts once: the sum is unweighted, because weighting by example counts would let a
client with many examples move the sum by more than ``S`` and break the sensitivity bound
the accountant (``federated.aggregation.privacy``) relies on. A client whose weight is 0 is
absent (dropped) and contributes nothing. The noise is drawn from the round's server key.

Per round it reports ``dp_clipped_fraction`` (present clients whose norm exceeded
``S``) and ``dp_mean_delta_norm`` (their mean norm before clipping).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fedbbpt_jax.federated.aggregation.aggregators import (Aggregated, Aggregator,
                                                           register_configured)
from fedbbpt_jax.federated.aggregation.privacy import DP_AGGREGATOR, DP_DEFAULTS, dp_settings

PyTree = Any


def client_norms(deltas: PyTree) -> jnp.ndarray:
  """``[C]``: each client's global L2 norm over every leaf of its update."""
  sq = [jnp.sum(jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32) ** 2, axis=1)
        for x in jax.tree.leaves(deltas)]
  return jnp.sqrt(sum(sq))


def clip_factors(norms: jnp.ndarray, clip_norm: float) -> jnp.ndarray:
  """``min(1, S / norm)`` per client (1 for a zero update)."""
  return jnp.minimum(1.0, clip_norm / jnp.maximum(norms, jnp.finfo(jnp.float32).tiny))


def gaussian_noise(key: jax.Array, like: PyTree, std: float) -> PyTree:
  """N(0, std^2) noise shaped like one client's update (``like``: leading client axis)."""
  leaves, treedef = jax.tree.flatten(like)
  keys = jax.random.split(key, len(leaves))
  noise = [std * jax.random.normal(k, x.shape[1:], x.dtype) for k, x in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, noise)


def dp_gaussian_aggregate(deltas: PyTree, weights: jnp.ndarray, key: jax.Array,
                          clip_norm: float, noise_multiplier: float,
                          denominator: float) -> Aggregated:
  """``(sum of clipped present deltas + N(0, (z S)^2)) / denominator`` and its metrics.

  Args:
    deltas: the clients' updates, leading client axis.
    weights: ``[C]``; only ``weights > 0`` matters (present), never the value.
    key: the round's server key (the noise).
    clip_norm: S.
    noise_multiplier: z.
    denominator: the expected cohort size (fixed, whatever the number present).
  """
  present = (weights > 0).astype(jnp.float32)
  norms = client_norms(deltas)
  coef = present * clip_factors(norms, clip_norm)
  noise = gaussian_noise(key, deltas, noise_multiplier * clip_norm)
  delta = jax.tree.map(lambda x, n: (jnp.tensordot(coef.astype(x.dtype), x, axes=1) + n)
                       / denominator, deltas, noise)
  count = jnp.maximum(jnp.sum(present), 1.0)
  metrics = {"dp_clipped_fraction": jnp.sum(present * (norms > clip_norm)) / count,
             "dp_mean_delta_norm": jnp.sum(present * norms) / count}
  return Aggregated(delta, metrics)


def make_dp_gaussian(clip_norm: float, noise_multiplier: float,
                     expected_cohort: int) -> Aggregator:
  """The aggregate function of DP-FedAvg with fixed ``S``, ``z`` and denominator."""
  if not clip_norm > 0 or not noise_multiplier >= 0 or not expected_cohort >= 1:
    raise ValueError(f"need clip_norm > 0, noise_multiplier >= 0, expected_cohort >= 1; got "
                     f"{clip_norm}, {noise_multiplier}, {expected_cohort}")

  def aggregate(deltas, weights, key):
    return dp_gaussian_aggregate(deltas, weights, key, clip_norm, noise_multiplier,
                                 float(expected_cohort))

  return aggregate


def build_from_config(config: Any, cohort_size: int | None) -> Aggregator:
  """``dp_gaussian`` from ``server.dp`` (z calibrated if -1), denominator ``cohort_size``.

  Raises:
    ValueError: no config or cohort size (DP has no defaults to fall back on).
  """
  if config is None or cohort_size is None:
    raise ValueError(f"aggregator {DP_AGGREGATOR!r} is built from the experiment config "
                     "(server.dp) and the cohort size: pass both")
  settings = dp_settings(config)
  return make_dp_gaussian(settings.clip_norm, settings.noise_multiplier, cohort_size)


register_configured(DP_AGGREGATOR, build_from_config,
                    reads={f"server.dp.{field}": value for field, value in DP_DEFAULTS.items()})
