"""Poisson cohorts: the sampling's rate, the capacity and its overflow, the chunked runner of a
partly filled cohort, one compile for cohorts of any size, and DP-FedAvg's fixed denominator.

The statistical tests use fixed seeds and bounds of several standard errors derived from
the binomial law (not numbers copied from a run).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from fedbbpt_jax.federated import ClientOutput, make_dp_gaussian, make_fedbbpt
from fedbbpt_jax.federated.aggregation.dp_aggregator import gaussian_noise
from fedbbpt_jax.federated.algorithms.algorithm import SERVER_KEY_FOLD
from fedbbpt_jax.federated.algorithms.fedbbpt import poisson_selector
from fedbbpt_jax.federated.algorithms.poisson import EMPTY_SLOT, PoissonSelector, capacity
from fedbbpt_jax.federated.algorithms.server import round_keys
from fedbbpt_jax.parallel import run_cohort, run_partial_cohort

N, COHORT, ROUNDS = 50, 10, 4000  # q = 0.2


def test_cohort_sizes_and_every_clients_inclusion_match_the_rate():
  select, _ = poisson_selector(N, COHORT)
  ids = jax.jit(jax.vmap(select.ids))(jax.random.split(jax.random.key(0), ROUNDS))
  ids = np.asarray(ids)
  q = COHORT / N
  sizes = (ids >= 0).sum(axis=1)
  # Mean size: Binomial(N, q) per round, standard error sqrt(N q (1-q) / R); allow 4 SE.
  se = math.sqrt(N * q * (1 - q) / ROUNDS)
  assert abs(sizes.mean() - N * q) < 4 * se
  assert abs(sizes.var() / (N * q * (1 - q)) - 1) < 0.1  # the binomial's variance (SE 2.2%)
  # Every client: Binomial(R, q) rounds; none beyond 5 SD, and their sum of squared
  # z-scores is chi-square with N degrees of freedom (two-sided 1e-4 quantiles).
  counts = np.bincount(ids[ids >= 0], minlength=N)
  z = (counts - ROUNDS * q) / math.sqrt(ROUNDS * q * (1 - q))
  assert np.abs(z).max() < 5
  chi2 = float(np.sum(z ** 2))
  assert stats.chi2.ppf(1e-4, N) < chi2 < stats.chi2.ppf(1 - 1e-4, N)
  # The layout: members ascending and distinct, then empty slots; nothing overflowed.
  for row in ids[:200]:
    members = row[row >= 0]
    assert np.all(np.diff(members) > 0) and np.all(row[len(members):] == EMPTY_SLOT)
  overflow = jax.vmap(select.overflow)(jax.random.split(jax.random.key(0), ROUNDS))
  assert int(overflow.sum()) == 0


def test_capacity_rule_and_an_overflow_keeps_a_random_subset_and_is_counted():
  # ceil(qN + 8 sd), a multiple of the chunk, at most N.
  assert capacity(1000, 100) == math.ceil(100 + 8 * math.sqrt(90))       # 176
  assert capacity(1000, 100, chunk=14) == 182
  assert capacity(10, 3) == 10
  assert stats.binom.sf(capacity(1000, 100), 1000, 0.1) < 1e-12
  small = PoissonSelector(N, 25, slots=10)  # q = 0.5: about 25 members for 10 slots
  key = jax.random.key(3)
  joined = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 3), 0.5, (N,)))
  ids = np.asarray(small.ids(key))
  assert int(small.overflow(key)) == joined.sum() - 10 > 0
  assert len(ids) == 10 and np.all(ids >= 0) and set(ids) <= set(np.flatnonzero(joined))
  # Over many rounds the kept ones are a uniform subset: low and high ids alike.
  many = np.asarray(jax.vmap(small.ids)(jax.random.split(key, 2000)))
  first_half = (many < N // 2).mean()
  assert abs(first_half - 0.5) < 4 * math.sqrt(0.25 / many.size)


def _update(params, data, key, hparams, round_idx):
  """A local update whose output reveals its inputs (and a key-dependent part)."""
  del hparams
  noise = jax.random.normal(key, ())
  return ClientOutput(delta={"w": params["w"] * 0 + data["x"] + noise + round_idx},
                      num_examples=jnp.int32(1), metrics={"train_loss": data["x"][0]})


def test_partial_cohort_equals_vmap_on_the_members_and_zeros_on_the_empty_slots():
  slots, chunk = 12, 4
  data = {"x": jnp.arange(slots * 2, dtype=jnp.float32).reshape(slots, 2)}
  keys = jax.random.split(jax.random.key(1), slots)
  params = {"w": jnp.zeros(2)}
  full = run_cohort(_update)(params, data, keys, None, 3)
  chunked = jax.jit(run_partial_cohort(_update, "vmap", chunk))
  looped = run_partial_cohort(_update, "loop")
  for count in range(slots + 1):
    for fn in (chunked, looped) if count in (0, 5, slots) else (chunked,):
      out = fn(params, data, keys, None, 3, jnp.int32(count))
      np.testing.assert_allclose(np.asarray(out.delta["w"][:count]),
                                 np.asarray(full.delta["w"][:count]), rtol=1e-6)
      assert not np.any(np.asarray(out.delta["w"][count:]))
      assert np.asarray(out.num_examples).tolist() == [1] * count + [0] * (slots - count)


def _fedbbpt(num_clients, cohort_size, aggregator, traces=None):
  def update(params, data, key, hparams, round_idx):
    if traces is not None:
      traces.append(1)  # Python runs while tracing only
    return _update(params, data, key, hparams, round_idx)

  select, chunk = poisson_selector(num_clients, cohort_size)
  return make_fedbbpt(update, optax.sgd(1.0), num_clients, cohort_size, aggregator=aggregator,
                      select=select, partial_chunk=chunk), select


def test_a_cohort_of_400_compiles_once_whatever_its_size():
  num_clients = 1000
  traces = []
  alg, select = _fedbbpt(num_clients, 400, "weighted_mean", traces)
  data = {"x": jnp.arange(num_clients * 2, dtype=jnp.float32).reshape(num_clients, 2)}
  step = jax.jit(alg.apply)
  state = alg.init({"w": jnp.zeros(2)})
  sizes, traced = [], []
  for _ in range(3):
    state, metrics = step(state, data, jax.random.key(0), None)
    sizes.append(int(metrics["participants"]))
    traced.append(len(traces))
  # ceil(400 + 8 sqrt(240)) = 524 slots, chunks of ceil(sqrt(524)) = 23: 23 chunks, 529 slots.
  assert select.slots == capacity(num_clients, 400, chunk=23) == 529
  assert len(set(sizes)) == 3                      # three cohort sizes...
  # ...traced in round 1 only: the zeros' shapes, the vmapped chunk, the single slot.
  assert traced == [3, 3, 3]
  assert step._cache_size() == 1                   # pylint: disable=protected-access
  assert all(abs(s - 400) < 6 * math.sqrt(240) for s in sizes)


def test_dp_fedavg_on_a_poisson_cohort_divides_by_the_expected_cohort():
  num_clients, cohort, clip, z = 40, 8, 5.0, 0.7
  alg, select = _fedbbpt(num_clients, cohort, make_dp_gaussian(clip, z, cohort))
  x = np.random.default_rng(0).normal(size=(num_clients, 2)).astype(np.float32) * 4
  data = {"x": jnp.asarray(x)}
  params = {"w": jnp.asarray([0.5, -1.0])}
  root = jax.random.key(5)
  state, metrics = jax.jit(alg.apply)(alg.init(params), data, root, None)
  # By hand: the round's members, their deltas (x_i + noise_i + round 0), clipped to S,
  # summed, plus the server's noise, over the EXPECTED cohort qN = 8.
  k_sample, k_clients = round_keys(root, 0)
  ids = np.asarray(select.ids(k_sample))
  members = ids[ids >= 0]
  assert len(members) == int(metrics["participants"]) != cohort  # realised != expected
  total = np.zeros(2)
  for i in members:
    d = x[i] + float(jax.random.normal(jax.random.fold_in(k_clients, i), ()))
    total += d * min(1.0, clip / np.linalg.norm(d))
  noise = gaussian_noise(jax.random.fold_in(k_sample, SERVER_KEY_FOLD),
                         {"w": jnp.zeros((1, 2))}, z * clip)["w"]
  want = params["w"] + (total + np.asarray(noise)) / cohort  # sgd(1) on -aggregate
  np.testing.assert_allclose(np.asarray(state.params["w"]), want, rtol=1e-5, atol=1e-6)
  # The clipping metrics are over the members only.
  norms = [np.linalg.norm(x[i] + float(jax.random.normal(jax.random.fold_in(k_clients, i), ())))
           for i in members]
  np.testing.assert_allclose(float(metrics["aggregator"]["dp_clipped_fraction"]),
                             np.mean(np.asarray(norms) > clip), rtol=1e-6)


def test_a_round_that_draws_nobody_keeps_the_model_and_momentum_unless_dp():
  """With server momentum a zero pseudo-gradient still moves the model: a Poisson round
  without members keeps parameters and optimizer state (the round counter moves); under
  DP-FedAvg the noisy step is released whoever joined."""
  num_clients, cohort = 4, 1  # q = 0.25: a quarter to a third of the rounds are empty
  select, chunk = poisson_selector(num_clients, cohort)
  data = {"x": jnp.ones((num_clients, 2))}
  root = jax.random.key(2)
  empty = [r for r in range(1, 20)
           if not np.any(np.asarray(select.ids(round_keys(root, r)[0])) >= 0)]
  first_empty = empty[0]
  assert np.any(np.asarray(select.ids(round_keys(root, 0)[0])) >= 0)  # round 0 steps

  def run(keep, aggregator="weighted_mean"):
    alg = make_fedbbpt(_update, optax.sgd(0.5, momentum=0.9), num_clients, cohort,
                       aggregator=aggregator, select=select, partial_chunk=chunk,
                       keep_when_empty=keep)
    step, state = jax.jit(alg.apply), alg.init({"w": jnp.zeros(2)})
    for _ in range(first_empty):
      state, _ = step(state, data, root, None)
    after, metrics = step(state, data, root, None)
    assert int(metrics["participants"]) == 0 and int(after.round) == int(state.round) + 1
    moved = lambda a, b: not all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in
                                 zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    return moved(after.params, state.params), moved(after.opt_state, state.opt_state)

  assert run(keep=True) == (False, False)
  assert run(keep=False) == (True, True)  # momentum alone moved the model (the old bug)
  assert run(keep=False, aggregator=make_dp_gaussian(1.0, 1.0, cohort))[0]  # DP: noise
