"""Searching the soft prompt ``z``: federated zero-order, local-only, and centralized BO.

The objective of a party is the mean execution score of the instruction ``z`` yields
on that party's examples (``execution.InstructionScorer``); the loss is its negative.
Generation and scoring are host calls (the open LLM, then the black-box LLM), so the
estimator's ``ask``/``tell`` (the project's zero-order estimators, unchanged) run
eagerly around them, one batched scoring call per step.

* ``federated_search``: every round each client runs ``local_steps`` estimator steps
  from the global ``z`` on its examples, ``z`` kept in ``[-1, 1]^d``; the server
  averages the clients' changes (example-weighted) and applies them.
* ``local_only_search``: each client the same steps alone, no averaging.
* ``centralized_bo``: ``bayes_opt.optimize`` on the pooled examples.

Every party's cost is counted: ``generations`` (open-LLM calls that were not cache
hits) and ``queries`` (black-box LLM requests), from the generator and the scorers.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.tasks.instruction import bayes_opt
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer
from fedbbpt_jax.tasks.instruction.generator import InstructionGenerator
from fedbbpt_jax.zo import Estimator, HParams


@dataclasses.dataclass
class SearchResult:
  """The found point, its instruction, and every round's mean client score."""

  z: np.ndarray
  instruction: str
  history: list[float]
  generations: int
  queries: int


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


def _cost(generator: InstructionGenerator, scorers: Sequence[InstructionScorer]) -> tuple[int, int]:
  return generator.generations, sum(s.queries for s in scorers)


def federated_search(generator: InstructionGenerator, client_scorers: Sequence[InstructionScorer],
                     estimator: Estimator, hparams: HParams, rounds: int, steps: int,
                     z0: np.ndarray, seed: int = 0) -> SearchResult:
  """Fed-BBPT over ``z`` (see the module docstring); ``history`` holds the global
  point's example-weighted score after every round."""
  z = np.asarray(z0, np.float32)
  weights = np.asarray([len(s.examples) for s in client_scorers], np.float64)
  root = jax.random.key(seed)
  history = []
  for r in range(rounds):
    deltas = []
    for c, scorer in enumerate(client_scorers):
      key = jax.random.fold_in(jax.random.fold_in(root, r), c)
      deltas.append(local_steps(z, generator, scorer, estimator, hparams, key, steps,
                                first_step=r * steps + 1) - z)
    z = np.clip(z + np.average(np.stack(deltas), axis=0, weights=weights), -1.0, 1.0)
    score = np.average([scores_of(generator, s, z[None])[0][0] for s in client_scorers],
                       weights=weights)
    history.append(float(score))
  generations, queries = _cost(generator, client_scorers)
  return SearchResult(z, generator.generate(z[None])[0], history, generations, queries)


def local_only_search(generator: InstructionGenerator, scorer: InstructionScorer,
                      estimator: Estimator, hparams: HParams, rounds: int, steps: int,
                      z0: np.ndarray, seed: int = 0, client: int = 0) -> SearchResult:
  """One client alone for the same rounds and steps (its own keys)."""
  z = np.asarray(z0, np.float32)
  root = jax.random.key(seed)
  history = []
  for r in range(rounds):
    key = jax.random.fold_in(jax.random.fold_in(root, r), client)
    z = local_steps(z, generator, scorer, estimator, hparams, key, steps, r * steps + 1)
    history.append(float(scores_of(generator, scorer, z[None])[0][0]))
  generations, queries = _cost(generator, [scorer])
  return SearchResult(z, generator.generate(z[None])[0], history, generations, queries)


def centralized_bo(generator: InstructionGenerator, scorer: InstructionScorer, dim: int,
                   initial: int = 25, iterations: int = 5, batch: int = 25,
                   seed: int = 0) -> SearchResult:
  """InstructZero's BO on the pooled examples; ``history`` is the best score so far after
  the design and after every iteration."""
  evaluated: list[float] = []

  def evaluate(zs):
    means, per = scores_of(generator, scorer, zs)
    evaluated.extend(means.tolist())
    return means, per

  result = bayes_opt.optimize(evaluate, dim, initial, iterations, batch, seed)
  marks = [initial + i * batch for i in range(iterations + 1)]
  history = [float(max(evaluated[:m])) for m in marks]
  z, _ = result.best
  generations, queries = _cost(generator, [scorer])
  return SearchResult(np.asarray(z, np.float32), generator.generate(z[None])[0], history,
                      generations, queries)
