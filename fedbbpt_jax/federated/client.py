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
    delta = jax.tree.map(jnp.subtract, final, params)
    metrics = {"train_loss": jnp.mean(stats["loss"]), "last_loss": stats["loss"][-1],
               "grad_norm": jnp.mean(stats["grad_norm"])}
    return ClientOutput(delta=delta, num_examples=data.num_examples.astype(jnp.float32),
                        metrics=metrics)

  return local_update
