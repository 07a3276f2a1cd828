"""The step-size clock: ``client.schedule='round'`` holds the gains through a round."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.federated import ClientData, make_client_optimizer, make_local_update
from fedbbpt_jax.federated.algorithms.client import schedule_clock
from fedbbpt_jax.zo import HParams, make_estimator

TARGET = jnp.asarray([1.0, -2.0, 0.5, 3.0], jnp.float32)
START = {"w": jnp.zeros(4, jnp.float32)}
DATA = ClientData(x=jnp.zeros((8, 1)), y=jnp.zeros((8,), jnp.int32),
                  num_examples=jnp.asarray(8, jnp.int32))


def quadratic_losses(candidates, batch):
  del batch
  return jax.vmap(lambda c: jnp.sum((c["w"] - TARGET) ** 2))(candidates)


def update(schedule, num_steps=4):
  return jax.jit(make_local_update(quadratic_losses, make_estimator("spsa", 2),
                                   make_client_optimizer("sgd"), num_steps, 4,
                                   schedule=schedule))


def test_clocks_count_steps_or_rounds():
  step, by_round = schedule_clock("step", 5), schedule_clock("round", 5)
  assert [int(step(jnp.asarray(2), jnp.asarray(k))) for k in range(5)] == [11, 12, 13, 14, 15]
  assert [int(by_round(jnp.asarray(2), jnp.asarray(k))) for k in range(5)] == [3] * 5
  with pytest.raises(ValueError, match="'epoch'"):
    schedule_clock("epoch", 5)


@pytest.mark.parametrize("round_idx", [0, 3])
def test_round_schedule_equals_a_constant_step_size_of_that_round(round_idx):
  # lr_t = lr / (t + o) ** alpha with t = r + 1 for every step of round r: the same update
  # as a constant step size lr / (r + 1 + o) ** alpha (sigma constant in both).
  lr, offset, decay = 0.05, 1.0, 0.6
  decayed = HParams.create(lr=lr, sigma=0.1, lr_offset=offset, lr_decay=decay)
  constant = HParams.create(lr=lr / (round_idx + 1 + offset) ** decay, sigma=0.1)
  key = jax.random.key(4)
  a = update("round")(START, DATA, key, decayed, round_idx)
  b = update("step")(START, DATA, key, constant, round_idx)
  np.testing.assert_allclose(np.asarray(a.delta["w"]), np.asarray(b.delta["w"]), rtol=1e-5)
  # The per-step clock shrinks within the round: a different (smaller) move.
  c = update("step")(START, DATA, key, decayed, round_idx)
  assert np.linalg.norm(np.asarray(c.delta["w"])) < np.linalg.norm(np.asarray(a.delta["w"]))


def test_round_schedule_does_not_depend_on_the_local_step_count():
  # A centralized baseline running 3x the steps per round keeps the clients' step size.
  hp = HParams.create(lr=0.05, sigma=0.1, lr_offset=1.0, lr_decay=0.6)
  key = jax.random.key(5)
  short = update("round", num_steps=2)(START, DATA, key, hp, 4)
  long_ = update("round", num_steps=6)(START, DATA, key, hp, 4)
  const = HParams.create(lr=0.05 / 6.0 ** 0.6, sigma=0.1)
  ref = update("step", num_steps=6)(START, DATA, key, const, 4)
  np.testing.assert_allclose(np.asarray(long_.delta["w"]), np.asarray(ref.delta["w"]), rtol=1e-5)
  assert not np.allclose(np.asarray(short.delta["w"]), np.asarray(long_.delta["w"]))


def test_a_pooled_chain_ticks_once_per_cohort():
  # Centralized: C x K steps a round with steps_per_tick = C has the step sizes of the
  # clients' K-step chains, each repeated C times.
  pooled = schedule_clock("step", 15, steps_per_tick=3)
  assert [int(pooled(jnp.asarray(1), jnp.asarray(k))) for k in range(15)] == [
      6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10]
  with pytest.raises(ValueError, match="whole number"):
    schedule_clock("step", 10, steps_per_tick=3)
