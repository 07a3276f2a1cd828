"""The federated algorithm contract, its registry, and the simulated round built from it.

An algorithm is five pure functions plus its exact black-box cost per round:

* ``init(params) -> state`` (``ServerState``; per-client algorithms stack ``params``);
* ``select(key, data) -> (ids, cohort)``: which clients run this round and their data;
* ``broadcast(state) -> received``: what the server sends every client;
* ``client_update(received, client_data, key, hparams, round_idx) -> upload``: node-local,
  one client's data and key in, its upload out;
* ``server_update(state, uploads, ids, key) -> (state, metrics)``: an aggregator entry
  followed by the server step;
* ``receive(received, uploads, hparams, round_idx) -> uploads`` (optional): how the
  server decodes what clients sent before anything else sees it (e.g. replaying seed
  uploads to dense deltas, ``seed_uploads.py``);
* ``model(state) -> params``: the model the run reports (default ``state.params``; the
  clients' mean for decentralized algorithms), and ``client_models(state)`` (stacked)
  for algorithms whose clients keep their own.

A simulated round is ``select -> broadcast -> run_cohort(client_update) -> [receive] ->
server_update`` (``simulated_round``); a deployment calls the same ``broadcast``,
``client_update``, ``receive`` and ``server_update``. Every simulated round reports its
traffic: ``upload_bytes`` (the cohort's ``payload()`` arrays, or whole uploads) and
``download_bytes`` (the broadcast, once per cohort member); with dropouts only the
survivors' uploads count. Simulated faults (Byzantine uploads, dropouts; ``faults.py``)
act on the uploads between ``run_cohort`` and ``server_update`` (``with_faults``).
Algorithms are registered by name in ``ALGORITHMS`` as an ``AlgorithmSpec``
(``build(ctx) -> Algorithm``, ``check(config)`` and ``check_fields(config)``, the
aggregators it applies) with the config fields only it reads; users register their own
from their code. ``aggregators_of`` / ``algorithms_applying`` say which algorithms and
aggregators work together, computed from the registries.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from fedbbpt_jax.core import ConfigError, Registry
from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.aggregation.aggregators import AGGREGATORS, DEFAULT_AGGREGATOR
from fedbbpt_jax.federated.algorithms.client import CandidateLosses, make_local_update
from fedbbpt_jax.federated.algorithms.server import ServerState, client_keys, round_keys
from fedbbpt_jax.parallel import run_cohort, run_partial_cohort
from fedbbpt_jax.zo import Estimator, HParams

PyTree = Any
BASELINE = "baseline"  # tag of algorithms that run as a baseline, not as server.algorithm
APPLIES_AGGREGATOR = "applies_aggregator"  # tag: the server combines uploads with server.aggregator
SEED_UPLOADS = "seed_uploads"  # tag: runs with client.upload='seeds' (seed_uploads.py)
HOST_SERVER = "host_server"  # tag: its server step runs on the host (``Algorithm.host_server``)


@dataclasses.dataclass(frozen=True)
class RoundCost:
  """Black-box work of one training round.

  Attributes:
    client_activations: (client, round) participations.
    candidates_per_activation: parameter points one activation scores.
    batch_size: examples each candidate is scored on.
  """

  client_activations: int
  candidates_per_activation: int
  batch_size: int

  @property
  def bb_calls(self) -> int:
    return self.client_activations * self.candidates_per_activation

  @property
  def bb_examples(self) -> int:
    return self.bb_calls * self.batch_size

  def counters(self) -> dict[str, int]:
    """The query-meter increments of one round (docs/algorithms.md, "Query accounting")."""
    return {"bb_examples": self.bb_examples, "bb_calls": self.bb_calls,
            "candidates": self.bb_calls, "client_activations": self.client_activations}


class Algorithm(NamedTuple):
  """A federated algorithm (see the module docstring); ``apply`` is its simulated round.

  ``apply(state, data, key, hparams) -> (state, metrics)``: ``data`` holds every client
  (leading client axis), ``key`` is the run's root key; the round's randomness is
  ``fold_in(key, state.round)``. ``host_server``: the server step runs on the host (e.g.
  a GP fit, ``bayes_opt.py``), so ``apply`` is called eagerly around its jitted client
  step, and what must trace the server step (a vmapped sweep, a deployment's jitted server
  step) refuses the algorithm.
  """

  name: str
  cohort_size: int
  round_cost: RoundCost
  init: Callable[[PyTree], ServerState]
  select: Callable[[jax.Array, ClientData], tuple[jnp.ndarray, ClientData]]
  broadcast: Callable[[ServerState], Any]
  client_update: Callable[..., Any]
  server_update: Callable[[ServerState, Any, jnp.ndarray, jax.Array], tuple[ServerState, dict]]
  apply: Callable[[ServerState, ClientData, jax.Array, HParams], tuple[ServerState, dict]]
  per_client_state: bool = False
  model: Callable[[ServerState], PyTree] = lambda state: state.params
  client_models: Callable[[ServerState], PyTree] | None = None
  summary: dict = {}
  backend: str = "vmap"
  receive: Callable[..., Any] | None = None
  host_server: bool = False
  partial_chunk: int = 0


FederatedAlgorithm = Algorithm  # the earlier name


SERVER_KEY_FOLD, FAULTS_KEY_FOLD = 1, 2  # streams of a round's sampling key
NO_SURVIVORS = "no_survivors"  # a faults metric: nobody reported, the state is kept


def keep_state_if(no_survivors: jnp.ndarray, new: ServerState, old: ServerState) -> ServerState:
  """``new``, or ``old``'s parameters and optimizer state with ``new``'s round counter."""
  keep = lambda n, o: jnp.where(no_survivors, o, n)
  return new.replace(params=jax.tree.map(keep, new.params, old.params),
                     opt_state=jax.tree.map(keep, new.opt_state, old.opt_state))


def tree_bytes(tree: Any) -> int:
  """Bytes of a pytree's arrays (static: from shapes and dtypes)."""
  return int(sum(a.size * jnp.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree)))


def payload_of(upload: Any) -> Any:
  """What of an upload goes on the wire and counts in ``upload_bytes``: its ``payload()``
  (``ClientOutput``: the delta; ``SeedUpload``: key data and losses), else all of it."""
  return upload.payload() if hasattr(upload, "payload") else upload


def traffic_metrics(received: Any, uploads: Any, cohort_size: int,
                    per_client_state: bool) -> dict:
  """``{"upload_bytes", "download_bytes"}`` of a round (cohort totals, int32 scalars).

  ``uploads`` are stacked over the cohort; an upload's ``payload()`` (``ClientOutput``:
  the delta; ``SeedUpload``: key data and losses) is what counts, else the whole upload.
  ``received`` is the broadcast (already one per member when ``per_client_state``).
  """
  payload = payload_of(uploads)
  down = tree_bytes(received) * (1 if per_client_state else cohort_size)
  as_scalar = lambda n: jnp.asarray(n, jnp.int32 if n < 2**31 else jnp.float32)
  return {"upload_bytes": as_scalar(tree_bytes(payload)), "download_bytes": as_scalar(down)}


def partial_cohort_metrics(ids: jnp.ndarray, select: Callable, k_sample: jax.Array) -> dict:
  """``participants`` (members of a partly filled cohort) and ``cohort_overflow`` (members
  the capacity left out, ``poisson.PoissonSelector.overflow``)."""
  metrics = {"participants": jnp.sum(ids >= 0).astype(jnp.int32)}
  if hasattr(select, "overflow"):
    metrics["cohort_overflow"] = select.overflow(k_sample)
  return metrics


def simulated_round(select, broadcast, client_update, server_update, backend: str,
                    per_client_state: bool = False, faults: Callable | None = None,
                    receive: Callable | None = None, partial_chunk: int = 0) -> Callable:
  """One round in simulation: select -> broadcast -> run_cohort(client_update) -> [receive]
  -> server_update.

  With ``per_client_state`` the broadcast holds one entry per client (leading axis)
  and each selected client receives its own. ``faults(uploads, ids, root_key,
  round_key) -> (uploads, metrics)`` (optional) corrupts or drops uploads before the
  server sees them; its metrics join the round's, and if they hold ``no_survivors``
  and it is true, the round keeps the parameters and optimizer state. ``receive(received,
  uploads, hparams, round_idx) -> uploads`` (optional) decodes the uploads first (faults
  then act on what the server decoded). The metrics hold the round's traffic
  (``traffic_metrics``).

  ``partial_chunk > 0``: ``select`` returns a partly filled cohort (members first, then
  empty slots of id -1: Poisson sampling, ``poisson.py``); the members run in chunks of
  that many clients and the empty slots run nothing (``parallel.run_partial_cohort``),
  upload zeros with weight 0 (every aggregator ignores them) and count in no traffic;
  the metrics add ``participants`` and ``cohort_overflow``.
  """
  if partial_chunk:
    cohort_fn = run_partial_cohort(client_update, backend, partial_chunk)
  else:
    cohort_fn = run_cohort(client_update, backend, per_client_params=per_client_state)

  def apply(state, data, key, hparams):
    k_sample, k_clients = round_keys(key, state.round)
    ids, cohort = select(k_sample, data)
    received = broadcast(state)
    if per_client_state:
      received = jax.tree.map(lambda a: a[ids], received)
    if partial_chunk:
      occupancy = partial_cohort_metrics(ids, select, k_sample)
      members = occupancy["participants"]
      uploads = cohort_fn(received, cohort, client_keys(k_clients, jnp.maximum(ids, 0)),
                          hparams, state.round, members)
      per_slot = traffic_metrics(received, uploads, 1, per_client_state)
      traffic = {k: v // ids.shape[0] * members if k == "upload_bytes" else v * members
                 for k, v in per_slot.items()}
    else:
      occupancy = {}
      uploads = cohort_fn(received, cohort, client_keys(k_clients, ids), hparams, state.round)
      traffic = traffic_metrics(received, uploads, ids.shape[0], per_client_state)
    if receive is not None:
      uploads = receive(received, uploads, hparams, state.round)
    if partial_chunk:  # an empty slot's replayed or zero upload weighs nothing
      uploads = uploads.replace(num_examples=jnp.where(ids >= 0, uploads.num_examples, 0))
    server_key = jax.random.fold_in(k_sample, SERVER_KEY_FOLD)
    if faults is None:
      new_state, metrics = server_update(state, uploads, ids, server_key)
      return new_state, {**metrics, **traffic, **occupancy}
    uploads, fault_metrics = faults(uploads, ids, key,
                                    jax.random.fold_in(k_sample, FAULTS_KEY_FOLD))
    new_state, metrics = server_update(state, uploads, ids, server_key)
    if NO_SURVIVORS in fault_metrics:
      new_state = keep_state_if(fault_metrics[NO_SURVIVORS], new_state, state)
    if "survivors" in fault_metrics:  # a dropped client trained but sent nothing
      per_client = traffic["upload_bytes"] // jnp.maximum(occupancy.get("participants",
                                                                         ids.shape[0]), 1)
      traffic = {**traffic, "upload_bytes": per_client * fault_metrics["survivors"]}
    return new_state, {**metrics, **fault_metrics, **traffic, **occupancy}

  return apply


def with_faults(algorithm: "Algorithm", faults: Callable | None) -> "Algorithm":
  """``algorithm`` whose simulated round passes the uploads through ``faults`` (see
  ``simulated_round``); ``None`` leaves it as it is."""
  if faults is None:
    return algorithm
  return algorithm._replace(apply=simulated_round(
      algorithm.select, algorithm.broadcast, algorithm.client_update, algorithm.server_update,
      algorithm.backend, algorithm.per_client_state, faults, algorithm.receive,
      algorithm.partial_chunk))


def make_algorithm(name: str, cohort_size: int, round_cost: RoundCost, *, init, select,
                   broadcast, client_update, server_update, backend: str,
                   per_client_state: bool = False,
                   model: Callable[[ServerState], PyTree] | None = None,
                   client_models: Callable[[ServerState], PyTree] | None = None,
                   summary: dict | None = None,
                   receive: Callable[..., Any] | None = None,
                   partial_chunk: int = 0) -> Algorithm:
  """An ``Algorithm`` whose ``apply`` is the simulated round of its functions.

  ``model``/``client_models``: see the module docstring; ``summary``: static entries
  for the run's summary (e.g. a topology's spectral gap); ``receive``,
  ``partial_chunk``: see ``simulated_round``.
  """
  apply = simulated_round(select, broadcast, client_update, server_update, backend,
                          per_client_state, receive=receive, partial_chunk=partial_chunk)
  return Algorithm(name=name, cohort_size=cohort_size, round_cost=round_cost, init=init,
                   select=select, broadcast=broadcast, client_update=client_update,
                   server_update=server_update, apply=apply, per_client_state=per_client_state,
                   model=model or (lambda state: state.params), client_models=client_models,
                   summary=dict(summary or {}), backend=backend, receive=receive,
                   partial_chunk=partial_chunk)


@dataclasses.dataclass(frozen=True)
class AlgorithmContext:
  """What an algorithm is built from (the generic builder fills it from the config).

  Attributes:
    config: the experiment config (algorithms read ``config.server`` etc.).
    candidate_losses: the task's ``(stacked candidates, batch) -> [num_candidates]``.
    estimator: the zero-order estimator.
    client_optimizer: optax transform of the estimate (learning rate 1).
    num_clients: number of clients.
    backend: cohort backend (``vmap`` | ``shard`` | ``loop``).
    project: map back to the feasible set after every step (or None).
    num_examples: the clients' example counts ``[num_clients]`` (or None).
  """

  config: Any
  candidate_losses: CandidateLosses
  estimator: Estimator
  client_optimizer: optax.GradientTransformation
  num_clients: int
  backend: str
  project: Callable[[PyTree], PyTree] | None = None
  num_examples: Any = None

  @property
  def cohort_size(self) -> int:
    """``server.cohort_size`` (0 = every client)."""
    return int(self.config.server.cohort_size or self.num_clients)

  @property
  def local_steps(self) -> int:
    return int(self.config.client.local_steps)

  @property
  def batch_size(self) -> int:
    return int(self.config.client.batch_size)

  def local_update(self, num_steps: int | None = None, steps_per_tick: int = 1) -> Callable:
    """The shared local update with ``num_steps`` steps (default ``client.local_steps``);
    its step-size clock ticks once every ``steps_per_tick`` steps."""
    return make_local_update(self.candidate_losses, self.estimator, self.client_optimizer,
                             self.local_steps if num_steps is None else num_steps,
                             self.batch_size, project=self.project, schedule=self.schedule,
                             steps_per_tick=steps_per_tick)

  @property
  def schedule(self) -> str:
    """The step-size clock, ``client.schedule`` (``'step'`` where a config has none)."""
    return str(self.config.client.get("schedule", "step"))


def no_check(config: Any) -> None:
  """The check of an algorithm that has nothing to check."""
  del config


DEFAULT_ROLE = "combines the uploads"  # what an algorithm does with server.aggregator


class AlgorithmSpec(NamedTuple):
  """A registered algorithm.

  Attributes:
    build: ``build(ctx) -> Algorithm``.
    check: ``check(config)`` raises ``ConfigError`` naming a field the algorithm cannot
      run with; called when ``config.server.algorithm`` names this algorithm.
    check_fields: ``check_fields(config)`` checks the values (ranges, choices) of the
      fields this algorithm owns (e.g. DFedSAM's ``config.decentralized``) where the
      config has them; called for EVERY config whichever algorithm it runs, so that a
      bad value fails at load time, not when someone switches ``server.algorithm``.
    aggregators: the ``server.aggregator`` values an algorithm tagged
      ``applies_aggregator`` applies (``None``: every registered aggregator).
    aggregator_role: what it does with the aggregator, for messages (DFedSAM: "mixes
      neighbours").
    display_name: how tables and plots name it (``'Fed-BBPT'``; '' = its registered name).
    local_only: the registered baseline that trains every client alone beside it
      (``baselines.local_only``): ``'local_only'`` (zero-order steps) or, for the BO
      algorithms, ``'local_bo'`` (every client's own BO).
  """

  build: Callable[[AlgorithmContext], Algorithm]
  check: Callable[[Any], None] = no_check
  check_fields: Callable[[Any], None] = no_check
  aggregators: tuple[str, ...] | None = None
  aggregator_role: str = DEFAULT_ROLE
  display_name: str = ""
  local_only: str = "local_only"


ALGORITHMS: Registry[AlgorithmSpec] = Registry(
    "federated algorithm", home="fedbbpt_jax.federated.ALGORITHMS")


def register_algorithm(name: str, build: Callable[[AlgorithmContext], Algorithm],
                       check: Callable[[Any], None] | None = None, *, baseline: bool = False,
                       applies_aggregator: bool = False, overwrite: bool = False,
                       check_fields: Callable[[Any], None] | None = None,
                       seed_uploads: bool = False, aggregators: Sequence[str] | None = None,
                       aggregator_role: str = DEFAULT_ROLE,
                       reads: Mapping[str, Any] | None = None, display_name: str = "",
                       host_server: bool = False, local_only: str = "local_only") -> None:
  """Registers an algorithm; ``baseline`` ones are not offered as ``server.algorithm``;
  ``applies_aggregator``: its server combines the uploads with ``server.aggregator``
  (``aggregators``: only these ones; implies ``applies_aggregator``); ``seed_uploads``:
  it runs with ``client.upload='seeds'``; ``reads``: the config fields only this
  algorithm reads (dotted, with their defaults: a run with another algorithm refuses
  them when set); ``check``/``check_fields``/``aggregator_role``/``display_name``: see
  ``AlgorithmSpec``; ``local_only``: see ``AlgorithmSpec``."""
  applies_aggregator = applies_aggregator or aggregators is not None
  spec = AlgorithmSpec(build, check or no_check, check_fields or no_check,
                       None if aggregators is None else tuple(aggregators), aggregator_role,
                       display_name, local_only)
  tags = ((BASELINE,) if baseline else ()) + ((APPLIES_AGGREGATOR,) if applies_aggregator else ())
  tags += (SEED_UPLOADS,) if seed_uploads else ()
  tags += (HOST_SERVER,) if host_server else ()
  ALGORITHMS.register(name, spec, tags=tags, overwrite=overwrite, reads=reads)


def server_algorithm_names() -> tuple[str, ...]:
  """The names ``config.server.algorithm`` may take."""
  return ALGORITHMS.names(without=BASELINE)


def algorithms_applying_aggregator() -> tuple[str, ...]:
  """The algorithms whose server applies ``server.aggregator`` (the others ignore it)."""
  return ALGORITHMS.names(APPLIES_AGGREGATOR)


def aggregators_of(algorithm: str) -> tuple[str, ...]:
  """The ``server.aggregator`` values ``algorithm`` applies: those it declared, every
  registered aggregator, or only the default one when its server does not use
  ``server.aggregator`` (any other value would be ignored)."""
  if APPLIES_AGGREGATOR not in ALGORITHMS.tags(algorithm):
    return (DEFAULT_AGGREGATOR,)
  declared = ALGORITHMS.get(algorithm).aggregators
  return AGGREGATORS.names() if declared is None else declared


def algorithms_applying(aggregator: str) -> tuple[str, ...]:
  """The ``server.algorithm`` values that apply ``aggregator`` (from the registries)."""
  return tuple(name for name in server_algorithm_names() if aggregator in aggregators_of(name))


def refuse_host_server(config: Any, where: str) -> None:
  """``ConfigError`` when ``config.server.algorithm`` runs its server step on the host and
  ``where`` (a vmapped sweep, a deployment) must trace it."""
  name = config.server.algorithm
  if name in ALGORITHMS.names() and HOST_SERVER in ALGORITHMS.tags(name):
    raise ConfigError(f"config.server.algorithm={name!r} runs its server step on the host "
                      f"(e.g. a GP fit), which {where} cannot trace; run it as a plain "
                      "simulation (experiments.train), one seed per run")


def algorithms_with_seed_uploads() -> tuple[str, ...]:
  """The algorithms that run with ``client.upload='seeds'`` (the others need 'dense')."""
  return ALGORITHMS.names(SEED_UPLOADS)
