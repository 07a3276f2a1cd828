"""Decentralized topologies: MH mixing matrices, closed-form spectra, gossip contraction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.core import UnknownNameError
from fedbbpt_jax.federated.topology import (TOPOLOGIES, consensus_distance, erdos_renyi,
                                            exponential, fully_connected, gossip, grid,
                                            is_connected, k_regular, metropolis_hastings,
                                            mixing_matrix, mixing_rate, ring, sample_weighted,
                                            spectral_gap, time_varying, torus)

M = 16
OPTIONS = {"seed": 0}


def sorted_eigenvalues(w):
  return np.sort(np.linalg.eigvalsh(w))


def random_stacked(m, seed=0):
  rng = np.random.default_rng(seed)
  return {"a": jnp.asarray(rng.normal(size=(m, 5)), jnp.float32),
          "b": {"c": jnp.asarray(rng.normal(size=(m, 2, 3)), jnp.float32)}}


@pytest.mark.parametrize("name", TOPOLOGIES.names())
def test_every_topology_gives_a_symmetric_doubly_stochastic_mh_matrix(name):
  adj = TOPOLOGIES.get(name)(M, OPTIONS)
  assert adj.shape == (M, M) and adj.dtype == bool
  assert np.array_equal(adj, adj.T) and not adj.diagonal().any()
  assert is_connected(adj)
  w = mixing_matrix(name, M, OPTIONS)
  assert w.dtype == np.float64
  np.testing.assert_allclose(w, w.T, atol=0)
  np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
  np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
  assert (w >= 0).all()
  assert np.array_equal(w > 0, adj | np.eye(M, dtype=bool))
  assert spectral_gap(w) > 0.0
  assert mixing_rate(w) == pytest.approx(1.0 - spectral_gap(w), abs=1e-15)


def test_builders_are_pure_and_have_the_right_degrees():
  assert (ring(8).sum(1) == 2).all()
  assert (torus(3, 4).sum(1) == 4).all()
  assert sorted(np.unique(grid(4, 4).sum(1))) == [2, 3, 4]
  assert (exponential(8).sum(1) == 5).all()       # +-1, +-2, 4 (= -4 mod 8)
  assert (exponential(16).sum(1) == 7).all()      # +-1, +-2, +-4, 8
  assert (fully_connected(5).sum(1) == 4).all()
  a = k_regular(16, 4, seed=3)
  assert (a.sum(1) == 4).all() and np.array_equal(a, k_regular(16, 4, seed=3))
  assert not np.array_equal(a, k_regular(16, 4, seed=4))
  big = k_regular(100, 10, seed=0)  # the pairing model with re-pairing copes with large k
  assert (big.sum(1) == 10).all() and is_connected(big)
  e = erdos_renyi(16, 0.3, seed=1)
  assert np.array_equal(e, erdos_renyi(16, 0.3, seed=1)) and is_connected(e)
  assert mixing_matrix("grid", 7).shape == (7, 7)  # a prime count is a 1 x 7 path
  assert np.array_equal(TOPOLOGIES.get("torus")(12, {"rows": 3}), torus(3, 4))


@pytest.mark.parametrize("m, expected", [(8, 0.8047), (16, 0.9493)])
def test_ring_spectrum(m, expected):
  w = mixing_matrix("ring", m)
  np.testing.assert_allclose(w[w > 0], 1 / 3, atol=1e-15)
  assert round(mixing_rate(w), 4) == expected
  k = np.arange(m)
  np.testing.assert_allclose(sorted_eigenvalues(w),
                             np.sort(1 / 3 + 2 / 3 * np.cos(2 * np.pi * k / m)), atol=1e-12)


@pytest.mark.parametrize("rows, cols", [(4, 4), (3, 4), (3, 5)])
def test_torus_spectrum(rows, cols):
  w = mixing_matrix("torus", rows * cols, {"rows": rows, "cols": cols})
  np.testing.assert_allclose(w[w > 0], 1 / 5, atol=1e-15)
  a, b = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
  closed = (1 + 2 * np.cos(2 * np.pi * a / rows) + 2 * np.cos(2 * np.pi * b / cols)) / 5
  np.testing.assert_allclose(sorted_eigenvalues(w), np.sort(closed.ravel()), atol=1e-12)
  if (rows, cols) == (4, 4):
    assert round(mixing_rate(w), 4) == 0.6000
    assert np.array_equal(w, mixing_matrix("torus", 16))  # the default factorisation


def test_grid_exponential_and_fully_connected_spectra():
  assert round(mixing_rate(mixing_matrix("grid", 16)), 4) == 0.8686
  assert round(mixing_rate(mixing_matrix("exponential", 8)), 4) == 0.3333
  assert round(mixing_rate(mixing_matrix("exponential", 16)), 4) == 0.5000
  for m in (2, 5, 16):
    w = mixing_matrix("fully_connected", m)
    assert np.array_equal(w, np.full((m, m), 1.0 / m))
    assert mixing_rate(w) < 1e-12 and spectral_gap(w) == pytest.approx(1.0, abs=1e-12)
  # The MH formula itself gives 11^T/m on a complete graph up to rounding.
  adj = fully_connected(7)
  adj[0, 1] = adj[1, 0] = False
  w = metropolis_hastings(adj)
  assert w[0, 1] == 0 and w[0, 2] == pytest.approx(1 / 7) and w[0, 0] == pytest.approx(2 / 7)


@pytest.mark.parametrize("name", ["ring", "torus"])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_gossip_contracts_by_lambda_squared_per_step_and_keeps_the_mean(name, steps):
  w = mixing_matrix(name, M)
  lam = mixing_rate(w)
  z0 = random_stacked(M, seed=steps)
  zq = gossip(w, z0, steps)
  d0, dq = float(consensus_distance(z0)), float(consensus_distance(zq))
  assert d0 > 1.0
  assert dq <= lam ** (2 * steps) * d0 * (1 + 1e-5)
  assert dq < d0
  for x0, xq in zip(jax.tree.leaves(z0), jax.tree.leaves(zq)):
    np.testing.assert_allclose(np.mean(xq, 0), np.mean(x0, 0), atol=1e-6)
    assert xq.shape == x0.shape and xq.dtype == jnp.float32
  # Q steps are W^Q applied to the stacked rows.
  wq = np.linalg.matrix_power(w, steps)
  np.testing.assert_allclose(zq["a"], wq @ np.asarray(z0["a"], np.float64), atol=1e-5)


def test_consensus_distance_by_hand_and_zero_steps():
  z = {"a": jnp.asarray([[0.0, 0.0], [2.0, 0.0]]), "b": jnp.asarray([[1.0], [3.0]])}
  # a: mean (1, 0), each row at squared distance 1 -> 1; b: mean 2 -> 1. Total 2.
  assert float(consensus_distance(z)) == pytest.approx(2.0)
  same = gossip(mixing_matrix("ring", 2), z, 0)
  np.testing.assert_array_equal(same["a"], z["a"])


def test_fully_connected_one_step_gives_every_client_the_uniform_mean():
  z0 = random_stacked(M)
  z1 = gossip(mixing_matrix("fully_connected", M), z0, 1)
  for x0, x1 in zip(jax.tree.leaves(z0), jax.tree.leaves(z1)):
    mean = np.mean(np.asarray(x0), axis=0)
    np.testing.assert_allclose(x1, np.broadcast_to(mean, x1.shape), atol=1e-6)
  assert float(consensus_distance(z1)) < 1e-10


def test_sample_weighted_rows_are_example_weighted_neighbourhood_means():
  m = 6
  counts = np.asarray([10, 1, 5, 0, 7, 3])
  adj = ring(m)
  w = sample_weighted(adj, counts)
  np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
  assert not np.allclose(w, w.T) and not np.allclose(w.sum(axis=0), 1.0)
  x = np.random.default_rng(0).normal(size=(m, 3))
  for i in range(m):
    hood = [i, (i - 1) % m, (i + 1) % m]
    expected = sum(counts[j] * x[j] for j in hood) / sum(counts[j] for j in hood)
    np.testing.assert_allclose(w[i] @ x, expected, atol=1e-12)
  assert w[2, 3] == 0.0 and w[0, 0] == pytest.approx(10 / 14)
  np.testing.assert_allclose(mixing_matrix("ring", m, weights="sample_weighted",
                                           num_examples=counts), w)
  with pytest.raises(ValueError, match="num_examples"):
    mixing_matrix("ring", m, weights="sample_weighted")
  with pytest.raises(ValueError, match="weights="):
    mixing_matrix("ring", m, weights="uniform")


@pytest.mark.parametrize("name", ["k_regular", "erdos_renyi"])
def test_time_varying_is_deterministic_per_round_and_changes_across_rounds(name):
  draws = [time_varying(name, M, OPTIONS, key_seed=7, round_idx=r) for r in range(4)]
  again = time_varying(name, M, {"seed": 123}, key_seed=7, round_idx=2)  # options.seed unused
  assert np.array_equal(draws[2], again)
  for r in range(3):
    assert not np.array_equal(draws[r], draws[r + 1])
  assert not np.array_equal(draws[0], time_varying(name, M, OPTIONS, key_seed=8, round_idx=0))
  for w in draws:
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
    assert spectral_gap(w) > 0
  with pytest.raises(ValueError, match="random topology"):
    time_varying("ring", M, OPTIONS, key_seed=7, round_idx=0)


def test_bad_options_raise_clear_errors():
  for m in (10, 7, 8):  # 2 x 5, prime, 2 x 4: no factors both >= 3
    with pytest.raises(ValueError, match=f"num_clients={m}"):
      mixing_matrix("torus", m)
  with pytest.raises(ValueError, match="rows"):
    torus(2, 8)
  with pytest.raises(ValueError, match=r"m=16, p=0\.01"):
    mixing_matrix("erdos_renyi", M, {"edge_probability": 0.01, "seed": 0})
  with pytest.raises(ValueError, match="k=3"):
    k_regular(15, 3, seed=0)  # m * k odd
  with pytest.raises(UnknownNameError, match="decentralized.topology") as err:
    mixing_matrix("star", M)
  assert "'ring'" in str(err.value)
  with pytest.raises(ValueError, match="leading client axis"):
    gossip(mixing_matrix("ring", 4), {"a": jnp.zeros((5, 2))}, 1)
