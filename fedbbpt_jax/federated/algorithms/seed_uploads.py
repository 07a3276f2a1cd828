"""Seed-and-scalar uploads: a client sends its key and its candidate losses, not its delta.

A zero-order client's local update is a deterministic function of the broadcast
parameters, its round key (the minibatch draws and the estimator's directions are all
split from it), its hyper-parameters and the scalar candidate losses the black box
answered. So instead of the dense ``delta`` (``4 x num_params`` bytes), a client can
upload ``SeedUpload(key_data, losses, ...)``: the raw ``uint32`` data of its key and the
losses ``[local_steps, num_candidates]`` (float32) it measured, as they came from the
black box (before ``nonfinite_as_worst``). The server rebuilds the exact delta by
REPLAYING the same step body (``client.take_step``) with a ``score`` that returns the
recorded losses of step ``k``: no black-box call and no data (the minibatch is drawn
from a one-row dummy; the replayed score never reads it, and the keys are split
exactly as in the client's run). Communication becomes independent of the generator's
size (the FedKSeed / DeComFL idea).

Only estimators whose ``tell`` uses nothing but key-derived directions, the losses, the
parameters and the estimator state can be replayed (estimators tagged ``replayable``); a
sharpness-aware step (two estimates per step) is not supported in this slice.

Example::

    record, replay = make_seed_local_update(losses_fn, estimator, optimizer, 5, 8)
    upload = record(params, data, key, hparams, round_idx)   # on the client
    delta = replay(params, upload, hparams, round_idx)       # on the server
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.federated.algorithms.client import (ClientOutput, CandidateLosses, StepHooks,
                                                     client_output, make_local_step, schedule_clock,
                                                     take_step)
from fedbbpt_jax.zo import ESTIMATORS, REPLAYABLE, Estimator, HParams

PyTree = Any

UPLOADS = ("dense", "seeds")  # the values of ``config.client.upload``

def seed_estimators() -> tuple[str, ...]:
  """The estimators whose steps a server can replay (registry tag ``replayable``: their
  ``tell`` reads only key-derived directions, losses, parameters and state)."""
  return ESTIMATORS.names(REPLAYABLE)


__all__ = ["SeedUpload", "seed_estimators", "UPLOADS", "check_seed_upload", "key_data",
           "make_seed_local_update", "replay_cohort"]


@struct.dataclass
class SeedUpload:
  """What a client sends in ``client.upload='seeds'`` mode.

  Attributes:
    key_data: the raw ``uint32`` data of the client's round key (e.g. ``[2]``).
    losses: ``[local_steps, num_candidates]`` float32 candidate losses as the black box
      answered them (non-finite values included; the replay applies the same rule).
    num_examples: the client's example count (the aggregation weight).
    metrics: the client's metrics (as in ``ClientOutput``).
  """

  key_data: jnp.ndarray
  losses: jnp.ndarray
  num_examples: jnp.ndarray
  metrics: dict

  def payload(self) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The arrays that go on the wire and count in ``upload_bytes``."""
    return (self.key_data, self.losses)


def key_data(key: jax.Array) -> jnp.ndarray:
  """The raw ``uint32`` data of a typed or a raw key (a plain array for the wire)."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key)
  return key


def check_seed_upload(estimator: str, sam_rho: float = 0.0) -> None:
  """Raises ``ConfigError`` if ``client.upload='seeds'`` cannot replay this client's steps."""
  if estimator not in seed_estimators():
    raise ConfigError(f"config.client.upload='seeds' cannot replay config.zo.estimator="
                      f"{estimator!r}: its update is not a function of the keys and the "
                      f"candidate losses alone; use one of {list(seed_estimators())} or "
                      "config.client.upload='dense' (an estimator of yours joins them with "
                      "the registry tag 'replayable')")
  if sam_rho:
    raise ConfigError(f"config.client.upload='seeds' does not replay sharpness-aware steps "
                      f"(sam_rho={sam_rho}); use config.client.upload='dense'")


def _dummy_data() -> ClientData:
  """One padding row: ``propose`` draws its minibatch from it (the keys split as usual)."""
  return ClientData(x=jnp.zeros((1,), jnp.float32), y=jnp.zeros((1,), jnp.int32),
                    num_examples=jnp.asarray(1, jnp.int32))


def make_seed_local_update(candidate_losses: CandidateLosses, estimator: Estimator,
                           client_optimizer: optax.GradientTransformation, num_steps: int,
                           batch_size: int,
                           project: Callable[[PyTree], PyTree] | None = None,
                           schedule: str = "step", steps_per_tick: int = 1
                           ) -> tuple[Callable[..., SeedUpload], Callable[..., PyTree]]:
  """Builds ``(record, replay)`` for the dense update ``make_local_update`` would build.

  ``record(params, data, key, hparams, round_idx) -> SeedUpload`` runs the dense local
  update and keeps the raw candidate losses of every step; ``replay(params, upload,
  hparams, round_idx) -> delta`` rebuilds that update's ``delta`` from the upload alone.

  Raises:
    ValueError: if ``estimator`` is not tagged ``replayable``.
  """
  if estimator.name not in seed_estimators() or estimator.sets_params:
    raise ValueError(f"estimator {estimator.name!r} cannot be replayed from seeds and "
                     f"losses; use one of {list(seed_estimators())}")
  step = make_local_step(candidate_losses, estimator, client_optimizer, batch_size,
                         StepHooks(project=project))
  clock = schedule_clock(schedule, num_steps, steps_per_tick)

  def record(params: PyTree, data: ClientData, key: jax.Array, hparams: HParams,
             round_idx: jnp.ndarray) -> SeedUpload:
    def body(carry, k):
      seen = []

      def score(candidates, batch):
        losses = step.score(candidates, batch)
        seen.append(losses)
        return losses

      p, est_state, opt_state, stats = take_step(step, score, *carry, data, key, hparams, k,
                                                 clock(round_idx, k))
      return (p, est_state, opt_state), (stats, seen[0].astype(jnp.float32))

    init = (params,) + step.init(params, clock(round_idx, 0))
    (final, _, _), (stats, losses) = jax.lax.scan(body, init, jnp.arange(num_steps))
    dense = client_output(params, final, data, stats)
    return SeedUpload(key_data=key_data(key), losses=losses, num_examples=dense.num_examples,
                      metrics=dense.metrics)

  def replay(params: PyTree, upload: SeedUpload, hparams: HParams,
             round_idx: jnp.ndarray) -> PyTree:
    key = jax.random.wrap_key_data(upload.key_data)
    dummy = _dummy_data()

    def body(carry, step_losses):
      k, losses_k = step_losses
      p, est_state, opt_state, _ = take_step(step, lambda candidates, batch: losses_k, *carry,
                                             dummy, key, hparams, k, clock(round_idx, k))
      return (p, est_state, opt_state), None

    init = (params,) + step.init(params, clock(round_idx, 0))
    (final, _, _), _ = jax.lax.scan(body, init, (jnp.arange(num_steps), upload.losses))
    return jax.tree.map(jnp.subtract, final, params)

  return record, replay


def replay_cohort(replay: Callable[..., PyTree]) -> Callable[..., ClientOutput]:
  """``receive(received, uploads, hparams, round_idx) -> ClientOutput`` for a cohort.

  The server's side of seed uploads: every ``SeedUpload`` of the cohort (leading axis)
  is replayed from the broadcast parameters to its dense delta, so that faults,
  aggregators and the server step see the same ``ClientOutput`` as in dense mode.
  """

  def receive(received, uploads: SeedUpload, hparams, round_idx) -> ClientOutput:
    delta = jax.vmap(replay, in_axes=(None, 0, None, None))(received, uploads, hparams,
                                                            round_idx)
    return ClientOutput(delta=delta, num_examples=uploads.num_examples,
                        metrics=uploads.metrics)

  return receive
