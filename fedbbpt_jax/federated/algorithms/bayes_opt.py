"""Bayesian optimisation of the prompt as a federated algorithm: ``fed_bo`` and
``centralized_bo`` (InstructZero's optimiser, ``zo.bayes_opt``, under the algorithm
contract, so the one driver runs it with its records, checkpoints, budgets and resume).

The server keeps every point it has had evaluated, with its combined score, and proposes
the points of the next round. The prompt is searched as one flat vector ``z`` in
``[-1, 1]^d`` (its pytree ravelled; the instruction family's soft prompt):

* the first ``bo.initial`` points are a scrambled Sobol design (seed ``config.seed``),
  evaluated ``bo.batch`` per round;
* after the design, each round evaluates the ``bo.batch`` points of highest expected
  improvement under the GP fitted on everything evaluated so far (``zo.bayes_opt.propose``,
  its random stream seeded by ``(config.seed, round)``, so a resumed run proposes what an
  uninterrupted one would). The next round's points are proposed at the end of a round,
  the last one's too (a resume may add rounds); the record of evaluated points has a fixed
  size, ``bo.max_points``, so that its checkpoints keep one shape.

A round: the broadcast is the round's points ``[batch, d]``; every client scores each of
them on every one of its examples (one black-box pass; padded rows of a smaller client
are scored too and masked out) and uploads the per-point mean loss and its example count;
the server combines the clients' mean scores (score = -loss) with ``server.aggregator``
(the default example-weighted mean is the pooled mean; the robust rules apply to the score
vectors as they do to deltas; DP noise does not: the kernel's score vectors would still
reach the server as sent), appends the points, and reports the best point so
far as the model. With ``bo.score_noise = s > 0`` every client adds independent Gaussian
noise of std ``s`` to each score it uploads (its mean losses; its per-example losses with
``'examples'`` vectors; padded rows stay zero), drawn from its round key's stream
``SCORE_NOISE_FOLD``: the server and the GP see only the noisy scores. It is a perturbation
of what leaves a client, not accounted as DP (losses are not clipped). The GP's
instruction-coupled kernel compares points by their score vectors: with
``bo.score_vectors='clients'`` (fed_bo's default) the per-client mean scores (only means
leave a client), with ``'examples'`` every example's score (what
InstructZero uses on pooled data; clients then upload per-example scores).

``centralized_bo`` is the same algorithm on one client holding every example
(``centralized.pool_clients``) with per-example score vectors: ``fed_bo`` with one client
and ``bo.score_vectors='examples'`` equals it round for round.

The server step runs on the host (a GP fit and numpy between jitted client scoring), so
``Algorithm.host_server`` is set: the simulation runs the round eagerly around the jitted
client step, a vmapped sweep and a Flower deployment refuse it. Every client of the run
takes part in every round (the score vectors need the same clients each time).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.flatten_util import ravel_pytree

from fedbbpt_jax.core import ConfigError, check_choice
from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.aggregation.aggregators import (make_aggregator, aggregator_name,
                                                          split_aggregated)
from fedbbpt_jax.federated.algorithms.algorithm import (SERVER_KEY_FOLD, Algorithm,
                                                        AlgorithmContext, RoundCost,
                                                        register_algorithm, traffic_metrics)
from fedbbpt_jax.federated.algorithms.centralized import pool_clients
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.federated.simulated_faults.faults import refuse_faults
from fedbbpt_jax.parallel import run_cohort

PyTree = Any
SCORE_VECTORS = ("clients", "examples")
BO_READS = {"bo.initial": 25, "bo.batch": 25, "bo.fit_steps": 100, "bo.max_points": 1000}
SCORE_NOISE_FOLD = 7  # a client's key's stream of its score noise (means, then per-example)
MAX_DIM = 256
# The rules fed_bo combines scores with. Not dp_gaussian: its noise would protect the combined
# score, while the kernel's score vectors (per-client or per-example) reach the server as sent.
SCORE_AGGREGATORS = ("weighted_mean", "median", "trimmed_mean", "norm_bounded_mean", "krum",
                     "multi_krum")  # a GP over more dimensions than this is not what BO is for


@struct.dataclass
class BOState:
  """Every point evaluated so far (rows past ``count`` are zero) and the next round's.

  Attributes:
    params: the best point so far as the prompt pytree (the initial prompt before any).
    points: ``[bo.max_points, d]`` evaluated points, in evaluation order.
    scores: ``[capacity]`` their combined scores (higher is better).
    vectors: ``[capacity, V]`` their score vectors (the kernel's second input).
    count: how many points were evaluated.
    proposals: ``[batch, d]`` the points the next round evaluates.
    round: completed rounds.
  """

  params: PyTree
  points: jnp.ndarray
  scores: jnp.ndarray
  vectors: jnp.ndarray
  count: jnp.ndarray
  proposals: jnp.ndarray
  round: jnp.ndarray


@struct.dataclass
class BOUpload:
  """A client's scores of the round's points: mean loss per point ``[batch]``, per-example
  losses ``[batch, n]`` (``'examples'`` vectors only; else ``[batch, 0]``), example count."""

  losses: jnp.ndarray
  example_losses: jnp.ndarray
  num_examples: jnp.ndarray
  metrics: dict

  def payload(self) -> PyTree:
    return (self.losses, self.example_losses)


def score_noise(config: Any) -> float:
  """``bo.score_noise``, 0 where absent."""
  return float(config.get("bo", {}).get("score_noise", 0.0))


def noisy_scores(mean_losses: jnp.ndarray, example_losses: jnp.ndarray, real: jnp.ndarray,
                 key: jax.Array, std: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The client's uploads plus Gaussian noise of std ``std`` (module docstring): means
  ``[batch]`` then per-example ``[batch, rows]`` (zero-width without 'examples' vectors),
  padded rows (``real`` False) left zero."""
  k_mean, k_rows = jax.random.split(jax.random.fold_in(key, SCORE_NOISE_FOLD))
  mean_losses = mean_losses + std * jax.random.normal(k_mean, mean_losses.shape)
  noise = std * jax.random.normal(k_rows, example_losses.shape)
  if example_losses.shape[1]:
    noise = jnp.where(real[None], noise, 0.0)
  return mean_losses, example_losses + noise


def bo_settings(config: Any) -> tuple[int, int, int, int]:
  """``(bo.initial, bo.batch, bo.fit_steps, bo.max_points)``, defaults where absent."""
  bo = config.get("bo", {})
  return tuple(int(bo.get(field.removeprefix("bo."), default))
               for field, default in BO_READS.items())


def check(config: Any, name: str) -> None:
  """What BO cannot run with, named by field."""
  initial, batch, fit_steps, max_points = bo_settings(config)
  if batch < 1 or initial < batch or initial % batch:
    raise ConfigError(f"config.bo.initial={initial} and config.bo.batch={batch}: the design "
                      f"is evaluated bo.batch points per round, so bo.initial must be a "
                      "positive multiple of bo.batch")
  if fit_steps < 1:
    raise ConfigError(f"config.bo.fit_steps={fit_steps} must be at least 1")
  if not score_noise(config) >= 0:
    raise ConfigError(f"config.bo.score_noise={score_noise(config)} must be >= 0 (the std "
                      "of the Gaussian noise on every uploaded score; 0 = exact scores)")
  rounds = int(config.train.rounds)
  if rounds * batch > max_points:
    raise ConfigError(f"config.train.rounds={rounds} x config.bo.batch={batch} points exceed "
                      f"config.bo.max_points={max_points} (the server's fixed-size record of "
                      "evaluated points, sized once so that a run can be resumed with more "
                      "rounds); raise bo.max_points")
  cohort = int(config.server.get("cohort_size", 0))
  num_clients = int(config.data.get("num_clients", 0))
  if cohort not in (0, num_clients):
    raise ConfigError(f"config.server.cohort_size={cohort}: server.algorithm={name!r} has every "
                      "client score every round (the GP's score vectors need the same "
                      "clients each time); set it to 0")
  refuse_faults(config, name, why=" (its scores are combined on the host)")
  if config.parallel.backend not in ("vmap", "loop"):
    raise ConfigError(f"config.parallel.backend={config.parallel.backend!r}: "
                      f"server.algorithm={name!r} runs its server on the host; use 'vmap' "
                      "or 'loop'")


def check_fields(config: Any) -> None:
  if "score_vectors" in config.get("bo", {}):
    check_choice(config, "bo.score_vectors", SCORE_VECTORS)


def make_bayes_opt(ctx: AlgorithmContext, name: str, pooled: bool,
                   client: int | None = None) -> Algorithm:
  """``fed_bo`` (``pooled=False``) or ``centralized_bo`` (see the module docstring); with
  ``client``, BO on that client's examples alone (one member of ``local_bo``)."""
  config = ctx.config
  initial, batch, fit_steps, capacity = bo_settings(config)
  alone = pooled or client is not None  # one scorer: per-example vectors, plain mean
  per_example = alone or config.get("bo", {}).get("score_vectors", "clients") == "examples"
  seed = int(config.seed)
  noise_std = score_noise(config)
  sizes = np.asarray(ctx.num_examples)
  num_clients = 1 if alone else ctx.num_clients
  rows = (int(sizes.sum()) if pooled else int(sizes[client]) if client is not None
          else int(sizes.max()))  # scored rows per client
  aggregate = (make_aggregator(aggregator_name(config.server), config, num_clients)
               if not alone else make_aggregator("weighted_mean"))
  state_box: dict[str, Any] = {}

  # SciPy (the Sobol design) and tinygp are imported only when a BO run starts: importing
  # the algorithm registry (every node, every ServerApp) stays light.
  from fedbbpt_jax.zo import bayes_opt as gp  # pylint: disable=import-outside-toplevel

  def init(params):
    flat, unravel = ravel_pytree(params)
    dim = int(flat.shape[0])
    if dim > MAX_DIM:
      raise ConfigError(f"server.algorithm={name!r} searches the prompt's {dim} parameters "
                        f"with a GP; BO is for at most {MAX_DIM} (the instruction family's "
                        "generator.intrinsic_dim, a small soft prompt)")
    state_box["unravel"], state_box["design"] = unravel, np.asarray(
        gp.sobol_design(initial, dim, seed), np.float32)
    width = rows * num_clients if per_example else num_clients
    return BOState(params=params, points=jnp.zeros((capacity, dim), jnp.float32),
                   scores=jnp.zeros((capacity,), jnp.float32),
                   vectors=jnp.zeros((capacity, width), jnp.float32),
                   count=jnp.asarray(0, jnp.int32),
                   proposals=jnp.asarray(state_box["design"][:batch]),
                   round=jnp.asarray(0, jnp.int32))

  def select(key, data):
    del key
    if pooled:
      return jnp.arange(1), pool_clients(data)
    if client is not None:  # its real rows only (static: the client's size is known)
      return jnp.asarray([client]), ClientData(x=data.x[client:client + 1, :rows],
                                               y=data.y[client:client + 1, :rows],
                                               num_examples=data.num_examples[client:client + 1])
    return jnp.arange(num_clients), data

  def client_update(received, data, key, hparams, round_idx):
    del hparams, round_idx
    candidates = jax.vmap(state_box["unravel"])(received)
    per_row = jax.vmap(lambda x, y: ctx.candidate_losses(candidates, {"x": x[None],
                                                                      "y": y[None]}))
    losses = per_row(data.x, data.y).T                                    # [batch, rows]
    real = jnp.arange(losses.shape[1]) < data.num_examples
    losses = jnp.where(real[None], losses, 0.0)
    n = data.num_examples.astype(jnp.float32)
    mean = losses.sum(axis=1) / jnp.maximum(n, 1.0)
    kept = losses if per_example else losses[:, :0]
    if noise_std > 0:
      mean, kept = noisy_scores(mean, kept, real, key, noise_std)
    return BOUpload(losses=mean, example_losses=kept, num_examples=data.num_examples,
                    metrics={"train_loss": jnp.min(mean)})

  client_step = jax.jit(client_update)

  def server_update(state, uploads, ids, key):
    weights = jnp.asarray(uploads.num_examples, jnp.float32)
    combined, metrics = split_aggregated(aggregate(-uploads.losses, weights, key))
    scores = np.asarray(combined, np.float32)                              # [batch]
    if per_example:  # every client's rows, client after client
      vectors = -np.asarray(uploads.example_losses).transpose(1, 0, 2).reshape(batch, -1)
    else:
      vectors = -np.asarray(uploads.losses).T                              # [batch, clients]
    n = int(state.count)
    points = np.asarray(state.points).copy()
    all_scores, all_vectors = np.asarray(state.scores).copy(), np.asarray(state.vectors).copy()
    points[n:n + batch], all_scores[n:n + batch] = np.asarray(state.proposals), scores
    all_vectors[n:n + batch] = vectors
    n += batch
    best = int(np.argmax(all_scores[:n]))
    round_done = int(state.round) + 1
    if n < initial:
      proposals = state_box["design"][n:n + batch]
    elif n + batch <= capacity:  # (also after the last round: a resume may add rounds)
      rng = np.random.default_rng([seed, round_done])
      proposals = gp.propose(gp.BOResult(points[:n], all_scores[:n].astype(float),
                                         all_vectors[:n].astype(float)),
                             batch, rng, fit_steps=fit_steps).astype(np.float32)
    else:  # the record is full: no round can follow
      proposals = np.zeros_like(np.asarray(state.proposals))
    new = BOState(params=state_box["unravel"](jnp.asarray(points[best])),
                  points=jnp.asarray(points), scores=jnp.asarray(all_scores),
                  vectors=jnp.asarray(all_vectors), count=jnp.asarray(n, jnp.int32),
                  proposals=jnp.asarray(proposals), round=jnp.asarray(round_done, jnp.int32))
    cohort = jnp.arange(ctx.num_clients) if pooled else ids
    return new, {**metrics, "train_loss": jnp.asarray(-all_scores[best]), "cohort": cohort,
                 "bo_round_best_loss": jnp.asarray(-scores.max()),
                 "bo_points": jnp.asarray(n, jnp.int32)}

  cohort_step = run_cohort(client_step, "vmap")

  def apply(state, data, key, hparams):
    k_sample, k_clients = round_keys(key, state.round)
    ids, cohort = select(k_sample, data)
    received = state.proposals
    uploads = cohort_step(received, cohort, client_keys(k_clients, ids), hparams, state.round)
    traffic = traffic_metrics(received, uploads, int(ids.shape[0]), False)
    new_state, metrics = server_update(state, uploads, ids,
                                       jax.random.fold_in(k_sample, SERVER_KEY_FOLD))
    return new_state, {**metrics, **traffic}

  cost = RoundCost(num_clients, batch, rows)
  return Algorithm(name=name, cohort_size=num_clients, round_cost=cost, init=init,
                   select=select, broadcast=lambda state: state.proposals,
                   client_update=client_step, server_update=server_update, apply=apply,
                   backend="vmap", host_server=True)


@struct.dataclass
class LocalBOState:
  """One ``BOState`` per client (their records differ in width: each client's own
  examples); ``params`` stacks the clients' best points on a leading client axis."""

  clients: tuple

  @property
  def params(self) -> PyTree:
    return jax.tree.map(lambda *p: jnp.stack(p), *[s.params for s in self.clients])


def make_local_bo(ctx: AlgorithmContext) -> Algorithm:
  """The local-only baseline of the BO algorithms: every client runs InstructZero's BO on
  its own examples alone (``centralized_bo`` on one client's data, per-example score
  vectors), the same rounds and points per round as the federated run, so the clients
  together score as many (point, example) rows as ``fed_bo``. Client ``i``'s BO equals
  ``centralized_bo`` run on client ``i``'s examples only (its own Sobol design, GP and
  proposals; its round key is ``fold_in(key, i)``)."""
  members = [make_bayes_opt(ctx, "local_bo", pooled=False, client=i)
             for i in range(ctx.num_clients)]
  _, batch, _, _ = bo_settings(ctx.config)

  def init(params):
    return LocalBOState(clients=tuple(m.init(params) for m in members))

  def apply(state, data, key, hparams):
    out = [m.apply(s, data, jax.random.fold_in(key, i), hparams)
           for i, (m, s) in enumerate(zip(members, state.clients))]
    new = LocalBOState(clients=tuple(s for s, _ in out))
    losses = jnp.stack([m["train_loss"] for _, m in out])
    return new, {"train_loss": jnp.mean(losses), "cohort": jnp.arange(ctx.num_clients)}

  # Each client scores every point on its real rows only (no padding): per round the
  # clients together score batch x (all their examples), which is what local_only_fields
  # reads (bb_examples); as one activation of `batch` candidates on the pooled rows.
  cost = RoundCost(1, batch, int(np.asarray(ctx.num_examples).sum()))
  return Algorithm(name="local_bo", cohort_size=ctx.num_clients, round_cost=cost, init=init,
                   select=members[0].select, broadcast=lambda state: None,
                   client_update=members[0].client_update, server_update=None, apply=apply,
                   per_client_state=True, backend="vmap", host_server=True)


register_algorithm("fed_bo", lambda ctx: make_bayes_opt(ctx, "fed_bo", pooled=False),
                   lambda config: check(config, "fed_bo"), check_fields=check_fields,
                   aggregators=SCORE_AGGREGATORS,
                   aggregator_role="combines the clients' scores",
                   reads={**BO_READS, "bo.score_vectors": SCORE_VECTORS[0],
                          "bo.score_noise": 0.0},
                   display_name="Fed-BO", host_server=True, local_only="local_bo")
register_algorithm("local_bo", make_local_bo, baseline=True, host_server=True)
register_algorithm("centralized_bo", lambda ctx: make_bayes_opt(ctx, "centralized_bo",
                                                                pooled=True),
                   lambda config: check(config, "centralized_bo"),
                   reads={**BO_READS, "bo.score_noise": 0.0},
                   display_name="centralized BO", host_server=True, local_only="local_bo")
