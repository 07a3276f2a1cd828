"""DFedSAM and DFedSAM-MGS (Shi et al., ICML 2023; arXiv 2302.04083): decentralized, no server.

Every client keeps its own prompt generator (the state's parameters carry a leading
client axis). A round:

1. every client runs K zero-order sharpness-aware steps from its own generator (the
   shared step body with ``StepHooks(sam_rho=rho)``: estimate g, move to
   ``w + rho g/||g||``, estimate again there, descend from w; ``rho = 0`` is DFedAvg);
2. the clients mix with their graph neighbours: ``X <- W X`` repeated ``Q`` times
   (``gossip_steps``; Q = 1 is DFedSAM, Q > 1 DFedSAM-MGS), one contraction over the
   client axis per step.

``order='train_then_mix'`` is the paper's algorithm (train, then gossip the results);
``'mix_then_train'`` (as in public DFedSAM code) gossips the models at the start of
the round, in ``broadcast``, and stores the trained results unmixed. ``W`` is a
topology's Metropolis-Hastings (or sample-weighted) matrix, fixed or redrawn every
round from the seed (``time_varying``; a resumed run redraws the same graphs).

Robust mixing (``server.aggregator``, the combination rule; there is no server):
``'weighted_mean'`` (default) is the matrix gossip above; ``'median'`` or
``'trimmed_mean'`` makes every client combine its in-neighbours' models (``W[i, j] > 0``,
itself included) with that rule instead of W's weights, ``Q`` times: a Byzantine
neighbour (``config.attack``) then moves an honest client by a bounded amount. Krum
and the norm-bounded mean are refused (a graph neighbourhood is too small for Krum's
``n - f - 2``; clipping models, not updates, has no meaning). Dropouts are refused.

Cost per round: every client runs K steps of 2 x N candidates (N without SAM).
The reported model is the clients' mean; each client's own model is evaluated too
(``Algorithm.client_models``), and the consensus distance
``(1/m) sum_i ||x_i - x_bar||^2`` is a round metric.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.core import (ConfigError, check_bool, check_choice, check_number,
                              check_registered, get_field,
                              refuse_unread)
from fedbbpt_jax.federated.aggregation.aggregators import (DEFAULT_AGGREGATOR, Aggregator,
                                                           aggregator_name, make_aggregator)
from fedbbpt_jax.federated.algorithms.algorithm import (Algorithm, AlgorithmContext, RoundCost,
                                                        make_algorithm, register_algorithm)
from fedbbpt_jax.federated.simulated_faults.faults import refuse_faults
from fedbbpt_jax.federated.algorithms.client import StepHooks, make_local_update
from fedbbpt_jax.federated.algorithms.fedbbpt import nonfinite_count
from fedbbpt_jax.federated.algorithms.local_only import every_client, per_client_init
from fedbbpt_jax.federated.algorithms.server import ServerState
from fedbbpt_jax.federated.topology import (TOPOLOGIES, WEIGHTS, consensus_distance, gossip,
                                            mixing_matrix, mixing_rate, time_varying)
from fedbbpt_jax.zo import ESTIMATORS, EVOLUTION

ORDERS = ("train_then_mix", "mix_then_train")
MIXING_RULES = (DEFAULT_AGGREGATOR, "median", "trimmed_mean")  # server.aggregator values
RANDOM = "random"  # topology tag: may be redrawn every round
# The config.decentralized section and its defaults (configs/common.py decentralized()):
# only DFedSAM reads it, a run with another algorithm refuses a field set to another value.
DECENTRALIZED_DEFAULTS = {"topology": "ring", "gossip_steps": 1, "rho": 0.05,
                          "order": "train_then_mix", "weights": "metropolis_hastings",
                          "time_varying": False, "rows": 0, "cols": 0, "degree": 4,
                          "edge_probability": 0.5, "topology_seed": 0}


def topology_options(cfg: Any) -> dict[str, Any]:
  """The graph options of the ``decentralized`` config section (0 / '' = the default)."""
  return {"rows": cfg.rows or None, "cols": cfg.cols or None, "degree": cfg.degree,
          "edge_probability": cfg.edge_probability, "seed": cfg.topology_seed}


def mixing_matrices(cfg: Any, num_clients: int, rounds: int, num_examples: Any) -> np.ndarray:
  """``W`` per round ``[rounds, m, m]`` (float32): one graph, or one drawn per round."""
  options = topology_options(cfg)
  if cfg.time_varying:
    ws = [time_varying(cfg.topology, num_clients, options, cfg.topology_seed, r,
                       weights=cfg.weights, num_examples=num_examples) for r in range(rounds)]
  else:
    ws = [mixing_matrix(cfg.topology, num_clients, options, weights=cfg.weights,
                        num_examples=num_examples)] * rounds
  return np.stack(ws).astype(np.float32)


def neighbour_mixing(w: jnp.ndarray, stacked: Any, steps: int, rule: Aggregator,
                     key: jax.Array) -> Any:
  """Every client i replaces its model by ``rule`` over its in-neighbours' models, ``steps``
  times: ``x_i <- rule(X, weights=W[i])``, where a weight of 0 (not a neighbour) is absent.

  With the weighted mean this is ``X <- W X`` (rows of W sum to 1). One client at a time
  (``lax.map``), so memory stays ``m x P``.
  """
  w = jnp.asarray(w, jnp.float32)

  def once(x, _):
    mixed = jax.lax.map(lambda row: rule(x, row, key), w)
    return jax.tree.map(lambda new, old: new.astype(old.dtype), mixed, x), None

  return jax.lax.scan(once, stacked, None, length=steps)[0]


def make_dfedsam(local_update, w_per_round: np.ndarray, gossip_steps: int, order: str,
                 round_cost: RoundCost, backend: str = "vmap",
                 summary: dict | None = None, rule: Aggregator | None = None) -> Algorithm:
  """Builds DFedSAM from a (sharpness-aware) local update and the round's mixing matrices.

  Args:
    local_update (Callable): ``make_local_update(..., hooks=StepHooks(sam_rho=rho))``.
    w_per_round: ``[R, m, m]`` mixing matrices; round r (0-based) uses ``w_per_round[r]``
      (rounds past R reuse the last).
    gossip_steps: Q mixing steps per round.
    order: ``'train_then_mix'`` or ``'mix_then_train'``.
    round_cost: the exact black-box cost of one round.
    backend: cohort backend.
    summary: static summary entries (topology, spectral gap, ...).
    rule: a robust neighbour rule (``neighbour_mixing``) instead of the matrix gossip.
  """
  if order not in ORDERS:
    raise ValueError(f"order={order!r} is not one of {list(ORDERS)}")
  ws = jnp.asarray(w_per_round, jnp.float32)
  num_clients = int(ws.shape[1])

  def w_of(round_idx):
    return ws[jnp.minimum(round_idx, ws.shape[0] - 1)]

  def mix(round_idx, params):
    if rule is None:
      return gossip(w_of(round_idx), params, gossip_steps)
    return neighbour_mixing(w_of(round_idx), params, gossip_steps, rule,
                            jax.random.key(0))  # the rules allowed here draw nothing

  def broadcast(state):
    if order == "mix_then_train":
      return mix(state.round, state.params)
    return state.params

  def server_update(state, uploads, ids, key):
    del key
    start = broadcast(state)
    params = jax.tree.map(jnp.add, start, uploads.delta)
    if order == "train_then_mix":
      params = mix(state.round, params)
    metrics = {"train_loss": jnp.mean(uploads.metrics["train_loss"]), "cohort": ids,
               "consensus_distance": consensus_distance(params), **nonfinite_count(uploads)}
    return ServerState(params=params, opt_state=(), round=state.round + 1), metrics

  return make_algorithm("dfedsam", num_clients, round_cost, init=per_client_init(num_clients),
                        select=every_client(num_clients),
                        broadcast=broadcast, client_update=local_update,
                        server_update=server_update, backend=backend, per_client_state=True,
                        model=lambda state: jax.tree.map(lambda x: jnp.mean(x, 0), state.params),
                        client_models=lambda state: state.params, summary=summary)


def check_fields(config: Any) -> None:
  """The values of the ``decentralized`` section, where the config has one (any algorithm)."""
  if "decentralized" not in config:
    return
  check_registered(config, "decentralized.topology", TOPOLOGIES)
  check_number(config, "decentralized.gossip_steps", low=1, integer=True)
  check_number(config, "decentralized.rho", low=0)
  check_choice(config, "decentralized.order", ORDERS)
  check_choice(config, "decentralized.weights", WEIGHTS)
  for field in ("rows", "cols", "degree", "topology_seed"):
    check_number(config, f"decentralized.{field}", low=0, integer=True)
  check_number(config, "decentralized.edge_probability", low=0, high=1, low_inclusive=False)
  check_bool(config, "decentralized.time_varying")
  topology = get_field(config, "decentralized.topology")
  if get_field(config, "decentralized.time_varying") and RANDOM not in TOPOLOGIES.tags(topology):
    raise ConfigError(f"config.decentralized.time_varying=True redraws a random graph every "
                      f"round; config.decentralized.topology={topology!r} is fixed (choose one "
                      f"of {list(TOPOLOGIES.names(RANDOM))})")


def check(config: Any) -> None:
  """What DFedSAM needs of the rest of the config (its section: ``check_fields``; its
  mixing rules ``MIXING_RULES``: the registration's ``aggregators``). A graph option
  the chosen topology does not read (``TOPOLOGIES`` entries declare theirs) is refused
  when set."""
  get_field(config, "decentralized")  # ConfigError naming it if the section is missing
  if get_field(config, "server.cohort_size") not in (0, get_field(config, "data.num_clients")):
    raise ConfigError(f"config.server.algorithm='dfedsam' trains every client every round: set "
                      f"config.server.cohort_size=0 "
                      f"(got {get_field(config, 'server.cohort_size')})")
  refuse_unread(config, "decentralized.topology", TOPOLOGIES.all_reads())  # e.g. degree
  refuse_faults(config, "dfedsam", model_poisoning=False,
                why=" (no server waits for the clients)")
  estimator = get_field(config, "zo.estimator")
  if EVOLUTION in ESTIMATORS.tags(estimator) and get_field(config, "decentralized.rho"):
    raise ConfigError(f"config.decentralized.rho > 0 needs a gradient estimate; "
                      f"config.zo.estimator={estimator!r} is an evolution strategy")


def build(ctx: AlgorithmContext) -> Algorithm:
  cfg = ctx.config.decentralized
  rho = float(cfg.rho)
  hooks = StepHooks(project=ctx.project, sam_rho=rho)
  local_update = make_local_update(ctx.candidate_losses, ctx.estimator, ctx.client_optimizer,
                                   ctx.local_steps, ctx.batch_size, hooks=hooks,
                                   schedule=ctx.schedule)
  estimates = 2 if rho else 1
  cost = RoundCost(ctx.num_clients, ctx.local_steps * estimates * ctx.estimator.num_candidates,
                   ctx.batch_size)
  try:
    ws = mixing_matrices(cfg, ctx.num_clients, int(ctx.config.train.rounds),
                         None if ctx.num_examples is None else np.asarray(ctx.num_examples))
  except ValueError as e:  # e.g. no torus for this many clients: name the fields
    raise ConfigError(f"config.decentralized.topology={cfg.topology!r} with "
                      f"config.data.num_clients={ctx.num_clients}: {e}") from e
  rule_name = aggregator_name(ctx.config.server)
  rule = (None if rule_name == DEFAULT_AGGREGATOR
          else make_aggregator(rule_name, ctx.config, ctx.cohort_size))
  return make_dfedsam(local_update, ws, int(cfg.gossip_steps), cfg.order, cost, ctx.backend,
                      summary=dict(method=variant_name(rho, int(cfg.gossip_steps), cfg.topology),
                                   topology=cfg.topology, gossip_steps=int(cfg.gossip_steps),
                                   sam_rho=rho, gossip_order=cfg.order, **spectral_summary(ws),
                                   **({"mixing_rule": rule_name} if rule else {})),
                      rule=rule)


def variant_name(rho: float, gossip_steps: int, topology: str) -> str:
  """``DFedAvg`` (rho = 0), ``DFedSAM`` (Q = 1) or ``DFedSAM-MGS Q=<Q>``, with the topology."""
  name = "DFedAvg" if not rho else "DFedSAM" if gossip_steps == 1 else "DFedSAM-MGS"
  if gossip_steps > 1:
    name += f" Q={gossip_steps}"
  return f"{name} ({topology})"


def spectral_summary(ws: np.ndarray) -> dict[str, float]:
  """Mixing rate lambda and spectral gap (first round's matrix; mean over rounds if redrawn)."""
  lam = float(np.mean([mixing_rate(np.asarray(w, np.float64)) for w in ws]))
  return {"mixing_rate": lam, "spectral_gap": 1.0 - lam}


register_algorithm("dfedsam", build, check, aggregators=MIXING_RULES,  # robust mixing
                   aggregator_role="mixes neighbours", check_fields=check_fields,
                   reads={f"decentralized.{field}": value
                          for field, value in DECENTRALIZED_DEFAULTS.items()})
