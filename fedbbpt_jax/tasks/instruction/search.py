"""Searching the soft prompt ``z``: federated zero-order, local-only, and centralized BO.

The objective of a party is the mean execution score of the instruction ``z`` yields
on that party's examples (``execution.InstructionScorer``); the loss is its negative.
Generation and scoring are host calls (the open LLM, then the black-box LLM), so the
estimator's ``ask``/``tell`` (the project's zero-order estimators, unchanged) run
eagerly around them, one batched scoring call per step.

* ``federated_search``: every round each client runs ``local_steps`` estimator steps
  from the global ``z`` on its examples, ``z`` kept in ``[-1, 1]^d``; the server
  combines the clients' changes, by default with their example-weighted mean, or with
  any ``aggregate(deltas [C, d], weights [C], key) -> delta`` rule (the registered
  ``federated`` aggregators: median, trimmed mean, Krum, DP, ...; the caller resolves
  ``server.aggregator``, as this layer does not import ``federated``) and applies it.
* ``local_only_search``: one client the same way alone, no averaging.
* ``centralized_bo``: ``bayes_opt.optimize`` on the pooled examples.

Every party's cost is counted: ``generations`` (open-LLM calls that were not cache
hits) and ``queries`` (black-box LLM requests), from the generator and the scorers.

The federated and local-only searches return the point of the round whose check
score (the global point on the training examples, ``history``) was best, the latest on
ties, as BO returns its best evaluated point; ``selected_round`` says which (training
data only: the test examples are never seen).

Rounds are the unit of progress. With ``state_file`` set, the state after every
complete round is written there (atomically) and a later call resumes from it. A
spent budget (``QueryBudgetExceeded``: the client's token budget, or HTTP 402 from the
provider) stops the search cleanly: the result is the point after the last complete
round and ``stopped`` says why.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.meter import QueryBudgetExceeded
from fedbbpt_jax.tasks.instruction import bayes_opt
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer
from fedbbpt_jax.tasks.instruction.generator import InstructionGenerator
from fedbbpt_jax.zo import Estimator, HParams


@dataclasses.dataclass
class SearchResult:
  """The found point, its instruction, every round's score, the costs, and why it
  stopped early (``None``: it ran every round)."""

  z: np.ndarray
  instruction: str
  history: list[float]
  generations: int
  queries: int
  stopped: str | None = None
  selected_round: int = 0   # 1-based round whose point is returned (0: none ran / BO)


def scores_of(generator: InstructionGenerator, scorer: InstructionScorer,
              zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(mean scores [N], per-example scores [N, E])`` of the points ``zs``."""
  results = scorer.score(generator.generate(zs))
  return (np.asarray([r.mean for r in results]),
          np.stack([r.per_example for r in results]))


def local_steps(z: np.ndarray, generator: InstructionGenerator, scorer: InstructionScorer,
                estimator: Estimator, hparams: HParams, key: jax.Array, steps: int,
                first_step: int = 1) -> np.ndarray:
  """``steps`` zero-order steps on ``-score`` from ``z`` (kept in ``[-1, 1]^d``)."""
  params = jnp.asarray(z, jnp.float32)
  state = estimator.init(params, jnp.asarray(first_step, jnp.int32))
  for k in range(steps):
    candidates, state = estimator.ask(jax.random.fold_in(key, k), params, state, hparams)
    means, _ = scores_of(generator, scorer, np.asarray(jnp.clip(candidates, -1.0, 1.0)))
    grad, state, _ = estimator.tell(params, candidates, jnp.asarray(-means, jnp.float32),
                                    state, hparams)
    lr = hparams.step_size(jnp.asarray(first_step + k, jnp.int32))
    params = jnp.clip(params - lr * grad, -1.0, 1.0)
  return np.asarray(params)


@dataclasses.dataclass
class _Progress:
  """What survives a restart: the rounds done, the point, the scores, the costs so far."""

  rounds_done: int
  z: np.ndarray
  history: list[float]
  generations: int = 0
  queries: int = 0
  best_z: np.ndarray | None = None
  best_round: int = 0


def _load(state_file: str | None, z0: np.ndarray) -> _Progress:
  if not state_file or not os.path.exists(state_file):
    return _Progress(0, np.asarray(z0, np.float32), [])
  with open(state_file) as f:
    d = json.load(f)
  z = np.asarray(d["z"], np.float32)
  if z.shape != np.shape(z0):
    raise ValueError(f"{state_file}: a saved point of shape {list(z.shape)} cannot resume a "
                     f"search over {list(np.shape(z0))} (another run's state?)")
  return _Progress(int(d["rounds_done"]), z, [float(h) for h in d["history"]],
                   int(d["generations"]), int(d["queries"]),
                   np.asarray(d["best_z"], np.float32), int(d["best_round"]))


def _save(state_file: str | None, p: _Progress) -> None:
  if not state_file:
    return
  tmp = state_file + ".tmp"
  with open(tmp, "w") as f:
    json.dump({"rounds_done": p.rounds_done, "z": p.z.tolist(), "history": p.history,
               "generations": p.generations, "queries": p.queries,
               "best_z": (p.z if p.best_z is None else p.best_z).tolist(),
               "best_round": p.best_round}, f)
  os.replace(tmp, state_file)


RoundHook = Callable[[dict], None]


def _rounds(progress: _Progress, rounds: int, one_round: Callable[[int, np.ndarray], tuple],
            generator: InstructionGenerator, scorers: Sequence[InstructionScorer],
            state_file: str | None, on_round: RoundHook | None = None) -> SearchResult:
  """Runs ``one_round(r, z) -> (z, score)`` from the saved progress, saving after each;
  ``on_round`` gets ``{round, score, instruction, generations, queries}`` after each
  (before the state is saved, so a crash in between repeats the row, never loses it)."""
  base_generations, base_queries = progress.generations, progress.queries
  cost = lambda: (base_generations + generator.generations,
                  base_queries + sum(s.queries for s in scorers))
  stopped = None
  for r in range(progress.rounds_done, rounds):
    try:
      z, score = one_round(r, progress.z)
    except QueryBudgetExceeded as e:
      stopped = f"budget spent in round {r + 1}: {e}"
      break
    progress.z, progress.rounds_done = z, r + 1
    progress.history.append(float(score))
    if progress.best_z is None or score >= progress.history[progress.best_round - 1]:
      progress.best_z, progress.best_round = z, r + 1
    progress.generations, progress.queries = cost()
    if on_round is not None:
      on_round({"round": r + 1, "score": float(score),
                "instruction": generator.generate(np.asarray(z)[None])[0],
                "generations": progress.generations, "queries": progress.queries})
    _save(state_file, progress)
  generations, queries = cost()
  z = progress.z if progress.best_z is None else progress.best_z
  return SearchResult(z, generator.generate(z[None])[0], progress.history, generations,
                      queries, stopped, progress.best_round)


def federated_search(generator: InstructionGenerator, client_scorers: Sequence[InstructionScorer],
                     estimator: Estimator, hparams: HParams, rounds: int, steps: int,
                     z0: np.ndarray, seed: int = 0, aggregator: Callable | None = None,
                     state_file: str | None = None,
                     on_round: RoundHook | None = None) -> SearchResult:
  """Fed-BBPT over ``z`` (see the module docstring); ``history`` holds the global
  point's example-weighted score after every round."""
  weights = np.asarray([len(s.examples) for s in client_scorers], np.float64)
  root = jax.random.key(seed)

  def one_round(r, z):
    deltas = []
    for c, scorer in enumerate(client_scorers):
      key = jax.random.fold_in(jax.random.fold_in(root, r), c)
      deltas.append(local_steps(z, generator, scorer, estimator, hparams, key, steps,
                                first_step=r * steps + 1) - z)
    if aggregator is None:
      delta = np.average(np.stack(deltas), axis=0, weights=weights)
    else:
      server_key = jax.random.fold_in(jax.random.fold_in(root, r), len(client_scorers))
      delta = aggregator(jnp.asarray(np.stack(deltas)), jnp.asarray(weights, jnp.float32),
                         server_key)
      delta = getattr(delta, "delta", delta)  # an Aggregated(delta, metrics) result
    z = np.clip(z + np.asarray(delta, np.float32), -1.0, 1.0)
    score = np.average([scores_of(generator, s, z[None])[0][0] for s in client_scorers],
                       weights=weights)
    return z, score

  return _rounds(_load(state_file, z0), rounds, one_round, generator, client_scorers,
                 state_file, on_round)


def local_only_search(generator: InstructionGenerator, scorer: InstructionScorer,
                      estimator: Estimator, hparams: HParams, rounds: int, steps: int,
                      z0: np.ndarray, seed: int = 0, client: int = 0,
                      state_file: str | None = None,
                      on_round: RoundHook | None = None) -> SearchResult:
  """One client alone for ``rounds`` x ``steps`` steps (its own keys)."""
  root = jax.random.key(seed)

  def one_round(r, z):
    key = jax.random.fold_in(jax.random.fold_in(root, r), client)
    z = local_steps(z, generator, scorer, estimator, hparams, key, steps, r * steps + 1)
    return z, scores_of(generator, scorer, z[None])[0][0]

  return _rounds(_load(state_file, z0), rounds, one_round, generator, [scorer], state_file,
                 on_round)


def centralized_bo(generator: InstructionGenerator, scorer: InstructionScorer, dim: int,
                   initial: int = 25, iterations: int = 5, batch: int = 25,
                   seed: int = 0) -> SearchResult:
  """InstructZero's BO on the pooled examples; ``history`` is the best score so far after
  the design and after every iteration. A spent budget ends it at the last complete
  batch (the best point evaluated so far)."""
  evaluated: list[tuple[np.ndarray, float]] = []

  def evaluate(zs):
    means, per = scores_of(generator, scorer, zs)
    evaluated.extend(zip(np.asarray(zs, np.float32), means.tolist()))
    return means, per

  stopped = None
  try:
    bayes_opt.optimize(evaluate, dim, initial, iterations, batch, seed)
  except QueryBudgetExceeded as e:
    stopped = f"budget spent after {len(evaluated)} evaluations: {e}"
  marks = [m for m in (initial + i * batch for i in range(iterations + 1)) if m <= len(evaluated)]
  history = [float(max(s for _, s in evaluated[:m])) for m in marks]
  if not evaluated:
    z = np.zeros(dim, np.float32)
  else:
    z = max(evaluated, key=lambda e: e[1])[0]
  return SearchResult(z, generator.generate(z[None])[0], history, generator.generations,
                      scorer.queries, stopped)
