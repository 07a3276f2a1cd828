"""One client's local work: K zero-order steps from the global generator, one step body.

A step is a few pure pieces, built once by ``make_local_step`` and chained by one
driver, ``take_step``:

    batch, candidates, est = propose(p, est, data, key, hparams, k)   # minibatch + ask
    losses = score(candidates, batch)                                 # ONE black-box call
    [SAM: p_eval = ascend(p, ...); candidates = reask(p_eval, ...); losses = score(...)]
    p, est, opt, stats = advance(p, p_eval, candidates, losses, est, opt, hparams, t)

``make_local_update`` runs ``take_step`` in ``lax.scan`` (the simulation); its ``unrolled``
form runs the same driver over the separately jitted pieces in a Python loop, scoring
each candidate with its own black-box call (the ``loop`` backend, the shape of the
reference codes). Hooks change the step without copying it: ``objective`` transforms
the candidate-loss function (e.g. a regularizer), ``project`` maps the parameters back to
their feasible set after every step (the simplex of a categorical prompt), and
``sam_rho > 0`` makes the step zero-order sharpness-aware (estimate g at w, estimate
again at ``w + rho g/||g||`` on the same minibatch, descend from w with that second
estimate: two estimates, i.e. twice the candidates, per step). A non-finite candidate
loss is ranked worst by one rule (``nonfinite_as_worst``) and counted in the metrics
(``nonfinite_candidates``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.algorithms.optimizers import make_client_optimizer
from fedbbpt_jax.zo import Estimator, HParams

PyTree = Any
CandidateLosses = Callable[[PyTree, dict], jnp.ndarray]
SAM_KEY_FOLD = 2  # the step key's third stream: the SAM step's second estimate

__all__ = ["ClientData", "ClientOutput", "LocalStep", "StepHooks", "make_client_optimizer",
           "make_local_step", "make_local_update", "nonfinite_as_worst", "sample_minibatch",
           "small_client_warning", "take_step"]


@struct.dataclass
class ClientOutput:
  """What a client uploads: its parameter change, its example count, its metrics."""

  delta: PyTree
  num_examples: jnp.ndarray
  metrics: dict

  def payload(self) -> PyTree:
    """The arrays that go on the wire and count in ``upload_bytes``: the delta."""
    return self.delta


class StepHooks(NamedTuple):
  """Changes to the shared step body.

  Attributes:
    objective: ``candidate_losses -> candidate_losses`` (the function every step scores).
    project: applied to the parameters after every step.
    sam_rho: radius of the sharpness-aware ascent (0 = a plain step).
  """

  objective: Callable[[CandidateLosses], CandidateLosses] | None = None
  project: Callable[[PyTree], PyTree] | None = None
  sam_rho: float = 0.0


def sample_minibatch(key: jax.Array, num_examples: jnp.ndarray, max_examples: int,
                     batch_size: int) -> jnp.ndarray:
  """Draws ``batch_size`` row indices among the first ``num_examples`` rows.

  Without replacement when ``num_examples >= batch_size``; otherwise the client's
  rows are cycled. Padded rows are never drawn.
  """
  scores = jax.random.uniform(key, (max_examples,))
  scores = jnp.where(jnp.arange(max_examples) < num_examples, scores, 2.0)
  order = jnp.argsort(scores)
  return order[jnp.arange(batch_size) % jnp.maximum(num_examples, 1)]


def small_client_warning(num_examples: Sequence[int], batch_size: int) -> str | None:
  """A warning line when some clients hold fewer examples than a minibatch (else None).

  States what ``sample_minibatch`` then does: the client's rows in a fresh random order,
  cycled up to ``batch_size`` (not sampling with replacement, no masking), so each row
  appears ``floor(batch_size / n)`` or ``ceil(batch_size / n)`` times in one minibatch
  and counts that often in the candidate losses.

  Example:
    >>> small_client_warning([5, 40], 8)[:60]
    'warning: 1 of 2 clients hold fewer examples than client.bat'
  """
  sizes = np.asarray(num_examples, np.int64)
  small = sizes < batch_size
  if not small.any():
    return None
  smallest = int(sizes.min())
  line = (f"warning: {int(small.sum())} of {len(sizes)} clients hold fewer examples than "
          f"client.batch_size={batch_size} (smallest: {smallest}); such a client's minibatch "
          "is its rows in a fresh random order, cycled to the batch size (no sampling with "
          "replacement, no masking), so each row counts up to "
          f"{math.ceil(batch_size / max(smallest, 1))} times in one minibatch's loss")
  if smallest == 0:
    line += (f"; {int((sizes == 0).sum())} client(s) hold no example at all and would score "
             "a padding row")
  return line


def minibatch(data: ClientData, key: jax.Array, batch_size: int) -> dict:
  """``{"x", "y"}`` of ``batch_size`` rows drawn from a client's real rows."""
  idx = sample_minibatch(key, data.num_examples, data.y.shape[0], batch_size)
  return {"x": data.x[idx], "y": data.y[idx]}


def nonfinite_as_worst(losses: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Replaces non-finite candidate losses by the worst finite one; returns the count.

  The one rule for a black box that answers NaN or inf for some candidates: they
  are ranked worst (never best) and never reach the parameters as NaN. If no loss
  is finite, every loss becomes 0 (the estimate is then 0: no step).
  """
  finite = jnp.isfinite(losses)
  worst = jnp.max(jnp.where(finite, losses, -jnp.inf))
  worst = jnp.where(jnp.any(finite), worst, jnp.zeros_like(worst))
  return jnp.where(finite, losses, worst), jnp.sum(~finite).astype(jnp.int32)


class LocalStep(NamedTuple):
  """The pieces of one zero-order step (see the module docstring).

  ``estimates_per_step`` is 2 for a sharpness-aware step (``ascend`` and ``reask`` are
  then used), else 1.
  """

  init: Callable[[PyTree, jnp.ndarray], tuple[Any, Any]]
  propose: Callable[..., tuple[dict, PyTree, Any]]
  score: CandidateLosses
  ascend: Callable[..., tuple[PyTree, jnp.ndarray]]
  reask: Callable[..., tuple[PyTree, Any]]
  advance: Callable[..., tuple[PyTree, Any, Any, dict]]
  estimates_per_step: int = 1


def take_step(step: LocalStep, score: CandidateLosses, p: PyTree, est_state: Any,
              opt_state: Any, data: ClientData, key: jax.Array, hparams: HParams,
              k: jnp.ndarray, t: jnp.ndarray) -> tuple[PyTree, Any, Any, dict]:
  """One zero-order step from the pieces: the one step body of every form.

  ``score`` is ``step.score`` in the compiled form, or a loop scoring one candidate
  per black-box call in the reference form.
  """
  batch, candidates, est_state = step.propose(p, est_state, data, key, hparams, k)
  losses = score(candidates, batch)
  p_eval, ascent_nonfinite = p, jnp.zeros((), jnp.int32)
  if step.estimates_per_step == 2:  # sharpness-aware: estimate again at the ascent point
    p_eval, ascent_nonfinite = step.ascend(p, candidates, losses, est_state, hparams)
    candidates, est_state = step.reask(p_eval, est_state, key, hparams, k)
    losses = score(candidates, batch)
  p, est_state, opt_state, stats = step.advance(p, p_eval, candidates, losses, est_state,
                                                opt_state, hparams, t)
  stats["nonfinite_candidates"] = stats["nonfinite_candidates"] + ascent_nonfinite
  return p, est_state, opt_state, stats


def make_local_step(candidate_losses: CandidateLosses, estimator: Estimator,
                    client_optimizer: optax.GradientTransformation, batch_size: int,
                    hooks: StepHooks = StepHooks()) -> LocalStep:
  """Builds the step pieces for one task, estimator, client optimizer and hooks."""
  score = candidate_losses if hooks.objective is None else hooks.objective(candidate_losses)
  rho = float(hooks.sam_rho)
  if rho and estimator.sets_params:
    raise ValueError(f"a sharpness-aware step needs a gradient estimate; estimator "
                     f"{estimator.name!r} sets the parameters itself")

  def init(params, first_step):
    return estimator.init(params, first_step), client_optimizer.init(params)

  def propose(p, est_state, data, key, hparams, k):
    k_batch, k_ask = jax.random.split(jax.random.fold_in(key, k))
    batch = minibatch(data, k_batch, batch_size)
    candidates, est_state = estimator.ask(k_ask, p, est_state, hparams)
    return batch, candidates, est_state

  def ascend(p, candidates, losses, est_state, hparams):
    """``p + rho * g / ||g||`` from a first estimate (its estimator state is discarded)."""
    losses, nonfinite = nonfinite_as_worst(losses)
    grad, _, _ = estimator.tell(p, candidates, losses, est_state, hparams)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grad)))
    scale = rho / jnp.maximum(norm, 1e-12)
    p_eval = jax.tree.map(lambda w, g: w + (scale * g).astype(w.dtype), p, grad)
    if hooks.project is not None:  # e.g. a categorical prompt stays on the simplex
      p_eval = hooks.project(p_eval)
    return p_eval, nonfinite

  def reask(p_eval, est_state, key, hparams, k):
    # Fresh directions: ``propose`` splits the step key in two (the streams folded with 0
    # and 1); the second estimate takes the third.
    k_ask = jax.random.fold_in(jax.random.fold_in(key, k), SAM_KEY_FOLD)
    return estimator.ask(k_ask, p_eval, est_state, hparams)

  def advance(p, p_eval, candidates, losses, est_state, opt_state, hparams, t):
    losses, nonfinite = nonfinite_as_worst(losses)
    grad, est_state, stats = estimator.tell(p_eval, candidates, losses, est_state, hparams)
    if estimator.sets_params:  # e.g. CMA-ES: ``tell`` returned the new mean itself
      p = jax.tree.map(lambda w, new: new.astype(w.dtype), p, grad)
    else:
      direction, opt_state = client_optimizer.update(grad, opt_state, p)
      lr_t = hparams.step_size(t)
      p = jax.tree.map(lambda w, d: w - lr_t * d, p, direction)
    if hooks.project is not None:
      p = hooks.project(p)
    return p, est_state, opt_state, dict(stats, nonfinite_candidates=nonfinite)

  return LocalStep(init=init, propose=propose, score=score, ascend=ascend, reask=reask,
                   advance=advance, estimates_per_step=2 if rho else 1)


def make_local_update(candidate_losses: CandidateLosses, estimator: Estimator,
                      client_optimizer: optax.GradientTransformation, num_steps: int,
                      batch_size: int,
                      project: Callable[[PyTree], PyTree] | None = None,
                      hooks: StepHooks | None = None,
                      schedule: str = "step",
                      steps_per_tick: int = 1) -> Callable[..., ClientOutput]:
  """Builds ``local_update(params, data, key, hparams, round_idx) -> ClientOutput``.

  Each of the ``num_steps`` steps draws a minibatch, asks the estimator for all its
  candidates, scores them in one batched black-box call, and applies
  ``params -= lr_t * client_optimizer(grad)`` (an estimator with ``sets_params``,
  e.g. CMA-ES, returns the next point itself, adopted as it is). The global step of
  local step k in round r is ``t = r * num_steps + k + 1``; estimator and optimizer
  state restart each round (docs/algorithms.md, "Federated defaults"). The returned function carries
  ``unrolled``, the same update in Python loops (see the module docstring).

  The step-size clock ``t`` (``HParams.step_size(t)``, ``perturbation_size(t)``) is
  set by ``schedule`` (``SCHEDULES``): ``'step'`` counts every local step as above;
  ``'round'`` holds ``t = r + 1`` through round r, so the gains shrink per round and
  do not depend on how many local steps a round has. ``steps_per_tick = C`` advances
  the ``'step'`` clock once every C steps: a centralized baseline running C x K pooled
  steps a round then has the step sizes of its clients' K-step chains instead of a
  schedule that shrinks C times faster.

  Args:
    candidate_losses: ``(stacked candidate params, batch) -> [num_candidates]``.
    estimator: the zero-order estimator.
    client_optimizer: optax transform of the estimate (learning rate 1).
    num_steps: local steps per round (static).
    batch_size: minibatch size (static).
    project: shorthand for ``hooks=StepHooks(project=project)``.
    hooks: changes to the step body (``StepHooks``).
    schedule: the step-size clock, ``'step'`` or ``'round'`` (see above).
    steps_per_tick: local steps per tick of the ``'step'`` clock (see above).
  """
  hooks = hooks or StepHooks(project=project)
  step = make_local_step(candidate_losses, estimator, client_optimizer, batch_size, hooks)
  clock = schedule_clock(schedule, num_steps, steps_per_tick)

  def local_update(params: PyTree, data: ClientData, key: jax.Array, hparams: HParams,
                   round_idx: jnp.ndarray) -> ClientOutput:
    def body(carry, k):
      p, est_state, opt_state, stats = take_step(step, step.score, *carry, data, key, hparams,
                                                 k, clock(round_idx, k))
      return (p, est_state, opt_state), stats

    init = (params,) + step.init(params, clock(round_idx, 0))
    (final, _, _), stats = jax.lax.scan(body, init, jnp.arange(num_steps))
    return client_output(params, final, data, stats)

  local_update.unrolled = _unrolled(step, estimator.num_candidates, num_steps, clock)
  return local_update


SCHEDULES = ("step", "round")


def schedule_clock(schedule: str, num_steps: int, steps_per_tick: int = 1
                   ) -> Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]:
  """``clock(round_idx, k)``: the 1-based step-size clock of local step k of a round."""
  if num_steps % steps_per_tick:
    raise ValueError(f"{num_steps} local steps are not a whole number of clock ticks of "
                     f"{steps_per_tick} steps")
  ticks = num_steps // steps_per_tick
  if schedule == "step":
    return lambda round_idx, k: round_idx * ticks + k // steps_per_tick + 1
  if schedule == "round":
    return lambda round_idx, k: round_idx + 1 + 0 * k
  raise ValueError(f"unknown step-size schedule {schedule!r}; use one of {SCHEDULES}")


def client_output(params: PyTree, final: PyTree, data: ClientData, stats: dict) -> ClientOutput:
  """The upload of a client that moved from ``params`` to ``final`` (stats per step)."""
  delta = jax.tree.map(jnp.subtract, final, params)
  metrics = {"train_loss": jnp.mean(stats["loss"]), "last_loss": stats["loss"][-1],
             "grad_norm": jnp.mean(stats["grad_norm"]),
             "nonfinite_candidates": jnp.sum(stats["nonfinite_candidates"])}
  return ClientOutput(delta=delta, num_examples=data.num_examples.astype(jnp.float32),
                      metrics=metrics)


def _unrolled(step: LocalStep, num_candidates: int, num_steps: int,
              clock: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
              ) -> Callable[..., ClientOutput]:
  """The local update as the reference codes run it: Python loops, one call per candidate.

  Same pieces, keys, minibatches, candidates and steps as the ``lax.scan`` form;
  ``propose`` and ``advance`` are jitted separately and every candidate is scored by
  its own jitted black-box call. Not traceable (not for ``jit``).
  """
  jitted = step._replace(**{name: jax.jit(getattr(step, name))
                            for name in ("init", "propose", "ascend", "reask", "advance")})

  @jax.jit
  def one_candidate_loss(candidate, batch):  # one black-box call: one candidate x minibatch
    return step.score(jax.tree.map(lambda a: a[None], candidate), batch)[0]

  def score_one_by_one(candidates, batch):
    return jnp.stack([one_candidate_loss(jax.tree.map(lambda a, i=i: a[i], candidates), batch)
                      for i in range(num_candidates)])

  def unrolled(params: PyTree, data: ClientData, key: jax.Array, hparams: HParams,
               round_idx: jnp.ndarray) -> ClientOutput:
    round_idx = jnp.asarray(round_idx, jnp.int32)
    p = params
    est_state, opt_state = jitted.init(params, clock(round_idx, jnp.asarray(0, jnp.int32)))
    history = []
    for k in range(num_steps):
      k_arr = jnp.asarray(k, jnp.int32)
      p, est_state, opt_state, stats = take_step(jitted, score_one_by_one, p, est_state,
                                                 opt_state, data, key, hparams, k_arr,
                                                 clock(round_idx, k_arr))
      history.append(stats)
    stats = jax.tree.map(lambda *xs: jnp.stack(xs), *history)
    return client_output(params, p, data, stats)

  return unrolled
