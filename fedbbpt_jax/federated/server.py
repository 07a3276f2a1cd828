"""Server side of Fed-BBPT: cohort sampling, weighted aggregation, server optimizer step."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fedbbpt_jax.federated.client import ClientData, ClientOutput
from fedbbpt_jax.parallel import run_cohort
from fedbbpt_jax.zo import HParams

PyTree = Any


@struct.dataclass
class ServerState:
  """Global generator, server optimizer state and the number of completed rounds."""

  params: PyTree
  opt_state: PyTree
  round: jnp.ndarray


class FederatedAlgorithm(NamedTuple):
  """``init(params) -> state``; ``apply(state, data, key, hparams) -> (state, metrics)``.

  ``data`` holds every client (``ClientData`` with a leading client axis); ``key``
  is the run's root key; the round's randomness is ``fold_in(key, state.round)``.
  """

  name: str
  init: Callable[[PyTree], ServerState]
  apply: Callable[[ServerState, ClientData, jax.Array, HParams], tuple[ServerState, dict]]


def make_server_optimizer(name: str, learning_rate: float = 1.0,
                          momentum: float = 0.9) -> optax.GradientTransformation:
  """Server optimizer on the pseudo-gradient ``-mean(delta)``.

  ``'sgd'`` with learning rate 1 is plain example-weighted FedAvg; ``'momentum'`` is
  FedAvgM; ``'adam'`` is FedAdam.
  """
  if name == "sgd":
    return optax.sgd(learning_rate)
  if name == "momentum":
    return optax.sgd(learning_rate, momentum=momentum)
  if name == "adam":
    return optax.adam(learning_rate)
  raise ValueError(f"unknown server optimizer {name!r}; choose 'sgd', 'momentum' or 'adam'")


def round_keys(key: jax.Array, round_idx: jnp.ndarray) -> tuple[jax.Array, jax.Array]:
  """Returns ``(sampling_key, clients_key)`` of a round: a pure function of (key, round)."""
  k_sample, k_clients = jax.random.split(jax.random.fold_in(key, round_idx))
  return k_sample, k_clients


def sample_cohort(key: jax.Array, num_clients: int, cohort_size: int) -> jnp.ndarray:
  """Draws ``cohort_size`` distinct client ids uniformly, sorted ascending."""
  if not 0 < cohort_size <= num_clients:
    raise ValueError(f"cohort_size={cohort_size} must be in [1, num_clients={num_clients}]")
  if cohort_size == num_clients:
    return jnp.arange(num_clients)
  return jnp.sort(jax.random.permutation(key, num_clients)[:cohort_size])


def client_keys(clients_key: jax.Array, client_ids: jnp.ndarray) -> jax.Array:
  """One key per client, depending only on the round and the client's id."""
  return jax.vmap(lambda i: jax.random.fold_in(clients_key, i))(client_ids)


def weighted_mean(tree: PyTree, weights: jnp.ndarray) -> PyTree:
  """Mean over the leading axis weighted by ``weights`` (e.g. example counts)."""
  w = weights / jnp.sum(weights)
  return jax.tree.map(lambda x: jnp.tensordot(w, x, axes=1), tree)


def make_fedbbpt(local_update: Callable[..., ClientOutput],
                 server_optimizer: optax.GradientTransformation, num_clients: int,
                 cohort_size: int, backend: str = "vmap",
                 project: Callable[[PyTree], PyTree] | None = None) -> FederatedAlgorithm:
  """Fed-BBPT: FedAvg of prompt generators trained by zero-order local steps.

  Per round: sample a cohort, run every member's ``local_update`` from the global
  generator, average the deltas weighted by example counts, and apply the server
  optimizer to the pseudo-gradient ``-mean_delta``; ``project`` (optional) maps the
  new global parameters back to their feasible set (e.g. the simplex).
  """
  cohort_fn = run_cohort(local_update, backend)

  def init(params):
    return ServerState(params=params, opt_state=server_optimizer.init(params),
                       round=jnp.asarray(0, jnp.int32))

  def apply(state, data, key, hparams):
    k_sample, k_clients = round_keys(key, state.round)
    ids = sample_cohort(k_sample, num_clients, cohort_size)
    cohort = jax.tree.map(lambda a: a[ids], data)
    out = cohort_fn(state.params, cohort, client_keys(k_clients, ids), hparams, state.round)
    mean_delta = weighted_mean(out.delta, out.num_examples)
    pseudo_grad = jax.tree.map(jnp.negative, mean_delta)
    updates, opt_state = server_optimizer.update(pseudo_grad, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if project is not None:
      params = project(params)
    metrics = {"train_loss": jnp.sum(out.metrics["train_loss"] * out.num_examples)
                             / jnp.sum(out.num_examples),
               "cohort": ids}
    return ServerState(params=params, opt_state=opt_state, round=state.round + 1), metrics

  return FederatedAlgorithm(name="fedbbpt", init=init, apply=apply)
