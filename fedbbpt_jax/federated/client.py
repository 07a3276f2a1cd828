"""One client's local work: K zero-order steps in ``lax.scan`` from the global generator."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fedbbpt_jax.zo import Estimator, HParams

PyTree = Any
CandidateLosses = Callable[[PyTree, dict], jnp.ndarray]


@struct.dataclass
class ClientData:
  """A client's examples padded to a common length; ``num_examples`` rows are real.

  Attributes:
    x: ``[max_n, ...]`` inputs (``[clients, max_n, ...]`` when stacked).
    y: ``[max_n]`` labels.
    num_examples: number of real rows (int32 scalar).
  """

  x: jnp.ndarray
  y: jnp.ndarray
  num_examples: jnp.ndarray


@struct.dataclass
class ClientOutput:
  """What a client uploads: its parameter change, its example count, its metrics."""

  delta: PyTree
  num_examples: jnp.ndarray
  metrics: dict


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


def make_client_optimizer(name: str, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """Direction transform applied to ZO estimates before the ``-lr_t`` step.

  ``'sgd'`` uses the estimate as it is (SPSA/SPSA-GC as in BlackVIP); ``'adam'``
  rescales it by Adam moments (state reset every round: stateless clients);
  ``'adamw'`` adds decoupled weight decay ``weight_decay * params`` (BDPL).
  """
  if name == "sgd":
    return optax.identity()
  if name == "adam":
    return optax.scale_by_adam()
  if name == "adamw":
    return optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(weight_decay))
  raise ValueError(f"unknown client optimizer {name!r}; choose 'sgd', 'adam' or 'adamw'")


def make_local_update(candidate_losses: CandidateLosses, estimator: Estimator,
                      client_optimizer: optax.GradientTransformation, num_steps: int,
                      batch_size: int,
                      project: Callable[[PyTree], PyTree] | None = None
                      ) -> Callable[..., ClientOutput]:
  """Builds ``local_update(params, data, key, hparams, round_idx) -> ClientOutput``.

  Each of the ``num_steps`` steps draws a minibatch, asks the estimator for all its
  candidates, scores them in one batched black-box call (``candidate_losses``),
  and applies ``params -= lr_t * client_optimizer(grad)`` (an estimator with
  ``sets_params``, e.g. CMA-ES, returns the next point itself, adopted as it is). The global step of local
  step k in round r is ``t = r * num_steps + k + 1``; estimator and optimizer state
  restart each round (methods.md 1.4).

  Args:
    candidate_losses: ``(stacked candidate params, batch) -> [num_candidates]``.
    estimator: the zero-order estimator.
    client_optimizer: optax transform of the estimate (learning rate 1).
    num_steps: local steps per round (static).
    batch_size: minibatch size (static).
    project: applied to the parameters after every step (e.g. the simplex
      projection of a categorical prompt); default: none.
  """

  def local_update(params: PyTree, data: ClientData, key: jax.Array, hparams: HParams,
                   round_idx: jnp.ndarray) -> ClientOutput:
    first_step = round_idx * num_steps + 1
    max_examples = data.y.shape[0]

    def step(carry, k):
      p, est_state, opt_state = carry
      step_key = jax.random.fold_in(key, k)
      k_batch, k_ask = jax.random.split(step_key)
      idx = sample_minibatch(k_batch, data.num_examples, max_examples, batch_size)
      batch = {"x": data.x[idx], "y": data.y[idx]}
      candidates, est_state = estimator.ask(k_ask, p, est_state, hparams)
      losses = candidate_losses(candidates, batch)
      grad, est_state, stats = estimator.tell(p, candidates, losses, est_state, hparams)
      if estimator.sets_params:  # e.g. CMA-ES: ``tell`` returned the new mean itself
        p = jax.tree.map(lambda w, new: new.astype(w.dtype), p, grad)
      else:
        direction, opt_state = client_optimizer.update(grad, opt_state, p)
        lr_t = hparams.step_size(first_step + k)
        p = jax.tree.map(lambda w, d: w - lr_t * d, p, direction)
      if project is not None:
        p = project(p)
      return (p, est_state, opt_state), stats

    init = (params, estimator.init(params, first_step), client_optimizer.init(params))
    (final, _, _), stats = jax.lax.scan(step, init, jnp.arange(num_steps))
    return _client_output(params, final, data, stats)

  local_update.unrolled = _make_unrolled(candidate_losses, estimator, client_optimizer,
                                         num_steps, batch_size, project)
  return local_update


def _client_output(params: PyTree, final: PyTree, data: ClientData, stats: dict) -> ClientOutput:
  delta = jax.tree.map(jnp.subtract, final, params)
  metrics = {"train_loss": jnp.mean(stats["loss"]), "last_loss": stats["loss"][-1],
             "grad_norm": jnp.mean(stats["grad_norm"])}
  return ClientOutput(delta=delta, num_examples=data.num_examples.astype(jnp.float32),
                      metrics=metrics)


def _make_unrolled(candidate_losses: CandidateLosses, estimator: Estimator,
                   client_optimizer: optax.GradientTransformation, num_steps: int,
                   batch_size: int, project: Callable[[PyTree], PyTree] | None
                   ) -> Callable[..., ClientOutput]:
  """``local_update`` as the reference codes run it: Python loops, one call per candidate.

  Same math and randomness as the ``lax.scan`` version (same keys, minibatches,
  candidates and steps), but every local step is a Python iteration and every
  candidate is scored by its own jitted black-box call on the minibatch; ask and
  tell are jitted separately. This is the ``loop`` cohort backend's client, the
  baseline the benchmarks compare ``vmap`` against. Not traceable (not for ``jit``).
  """

  @jax.jit
  def ask(p, est_state, data, key, hparams, k):
    k_batch, k_ask = jax.random.split(jax.random.fold_in(key, k))
    idx = sample_minibatch(k_batch, data.num_examples, data.y.shape[0], batch_size)
    candidates, est_state = estimator.ask(k_ask, p, est_state, hparams)
    return {"x": data.x[idx], "y": data.y[idx]}, candidates, est_state

  @jax.jit
  def one_candidate_loss(candidate, batch):  # one black-box call: one candidate x minibatch
    return candidate_losses(jax.tree.map(lambda a: a[None], candidate), batch)[0]

  @jax.jit
  def tell(p, candidates, losses, est_state, opt_state, hparams, t):
    grad, est_state, stats = estimator.tell(p, candidates, losses, est_state, hparams)
    if estimator.sets_params:
      p = jax.tree.map(lambda w, new: new.astype(w.dtype), p, grad)
    else:
      direction, opt_state = client_optimizer.update(grad, opt_state, p)
      lr_t = hparams.step_size(t)
      p = jax.tree.map(lambda w, d: w - lr_t * d, p, direction)
    if project is not None:
      p = project(p)
    return p, est_state, opt_state, stats

  init = jax.jit(lambda params, first_step: (estimator.init(params, first_step),
                                             client_optimizer.init(params)))

  def unrolled(params: PyTree, data: ClientData, key: jax.Array, hparams: HParams,
               round_idx: jnp.ndarray) -> ClientOutput:
    first_step = jnp.asarray(round_idx, jnp.int32) * num_steps + 1
    p = params
    est_state, opt_state = init(params, first_step)
    history = []
    for k in range(num_steps):
      k_arr = jnp.asarray(k, jnp.int32)
      batch, candidates, est_state = ask(p, est_state, data, key, hparams, k_arr)
      losses = jnp.stack([
          one_candidate_loss(jax.tree.map(lambda a, i=i: a[i], candidates), batch)
          for i in range(estimator.num_candidates)])
      p, est_state, opt_state, stats = tell(p, candidates, losses, est_state, opt_state,
                                            hparams, first_step + k_arr)
      history.append(stats)
    stats = jax.tree.map(lambda *xs: jnp.stack(xs), *history)
    return _client_output(params, p, data, stats)

  return unrolled
