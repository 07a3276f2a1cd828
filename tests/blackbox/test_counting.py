"""CountingBlackBox counts what really reaches the model, inside vmap, scan and jit."""

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox


def _counting():
  inner = SurrogateBlackBox("lin", lambda v, x: x @ v, jnp.ones((4, 3)), (4,), 3)
  return CountingBlackBox(inner), inner


def test_outputs_equal_the_inner_black_box():
  bb, inner = _counting()
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)
  np.testing.assert_array_equal(np.asarray(bb(x)), np.asarray(inner(x)))
  assert bb.counts() == {"calls": 1, "examples": 5}
  assert bb.output_size == 3 and bb.input_shape == (4,)


def test_each_vmapped_client_and_each_scanned_step_is_a_call():
  bb, _ = _counting()
  jax.jit(jax.vmap(lambda x: bb(x).sum()))(jnp.ones((6, 7, 4)))    # 6 clients x 7 rows
  assert bb.counts() == {"calls": 6, "examples": 42}
  bb.reset()
  scan = lambda xs: jax.lax.scan(lambda c, x: (c + bb(x).sum(), None), 0.0, xs)[0]
  jax.jit(jax.vmap(scan))(jnp.ones((2, 3, 5, 4)))                  # 2 clients x 3 steps x 5
  assert bb.counts() == {"calls": 6, "examples": 30}
