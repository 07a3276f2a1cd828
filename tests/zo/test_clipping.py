"""ZIP's intrinsic-dimensional clipping: an estimate of norm at least sqrt(n) is scaled to
exactly sqrt(n) along its own direction, a smaller one passes bit for bit; the clipped
estimators return their base estimator's estimate so clipped, with the same candidates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.zo import CLIPPED, ESTIMATORS, REPLAYABLE, HParams, make_estimator
from fedbbpt_jax.zo.clipping import clip_to_sqrt_dim


def test_a_large_estimate_is_scaled_to_sqrt_n_and_a_small_one_passes():
  big = jnp.asarray([30.0, -40.0, 0.0, 0.0])                 # norm 50, threshold 2
  out, scaled = clip_to_sqrt_dim(big)
  np.testing.assert_allclose(np.asarray(out), [1.2, -1.6, 0.0, 0.0], rtol=1e-6)
  assert bool(scaled) and float(jnp.linalg.norm(out)) == pytest.approx(2.0, rel=1e-6)
  small = jnp.asarray([0.5, -1.0, 0.25, 1.0])                # norm 1.52 < 2
  out, scaled = clip_to_sqrt_dim(small)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(small))
  assert not bool(scaled)
  out, scaled = clip_to_sqrt_dim(jnp.zeros(9))                # no division by zero
  assert not np.asarray(out).any() and not bool(scaled)


@pytest.mark.parametrize("name", ["spsa_clip", "spsa_gc_clip"])
def test_the_clipped_estimator_clips_its_base_estimate(name):
  assert {CLIPPED, REPLAYABLE} <= set(ESTIMATORS.tags(name))
  clipped, base = make_estimator(name, 2), make_estimator(name.removesuffix("_clip"), 2)
  params = {"w": jnp.arange(5, dtype=jnp.float32)}
  hp = HParams.create(lr=0.1, sigma=0.01)
  key = jax.random.key(0)
  outs = []
  for est in (clipped, base):
    state = est.init(params, jnp.asarray(1, jnp.int32))
    cands, state = est.ask(key, params, state, hp)
    losses = jnp.asarray([3.0, -2.0, 1.0, 0.5])  # large differences: a large estimate
    grad, state, stats = est.tell(params, cands, losses, state, hp)
    outs.append((cands, grad, stats))
  np.testing.assert_array_equal(np.asarray(outs[0][0]["w"]), np.asarray(outs[1][0]["w"]))
  g_base = np.asarray(outs[1][1]["w"])
  assert np.linalg.norm(g_base) > np.sqrt(5)
  np.testing.assert_allclose(np.asarray(outs[0][1]["w"]),
                             g_base * np.sqrt(5) / np.linalg.norm(g_base), rtol=1e-6)
  assert float(outs[0][2]["clipped"]) == 1.0 and clipped.name == name
