"""Chunked calls of a local black box: same outputs, fixed-size forwards, checked config."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from fedbbpt_jax.blackbox.chunked import ChunkedBlackBox
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.train.config_check import check_chunk_size

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4 * 4 * 3, 10)).astype(np.float32)


def tiny_classifier():
  return SurrogateBlackBox("tiny", lambda w, x: jnp.tanh(x.reshape(len(x), -1) @ w), W,
                           (4, 4, 3), 10)


@pytest.mark.parametrize("rows", [1, 7, 8, 9, 26])
def test_chunked_outputs_equal_the_whole_call(rows):
  x = jnp.asarray(RNG.uniform(size=(rows, 4, 4, 3)), jnp.float32)
  whole = tiny_classifier()(x)
  chunked = jax.jit(ChunkedBlackBox(tiny_classifier(), 8).__call__)(x)
  assert chunked.shape == (rows, 10)
  np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), rtol=1e-6, atol=1e-6)


def test_every_forward_is_one_chunk_and_vmap_keeps_it():
  counting = CountingBlackBox(tiny_classifier())
  chunked = ChunkedBlackBox(counting, 8)
  x = jnp.asarray(RNG.uniform(size=(3, 20, 4, 4, 3)), jnp.float32)  # 3 clients x 20 inputs
  out = jax.jit(jax.vmap(chunked))(x)
  np.testing.assert_allclose(np.asarray(out), np.asarray(jax.vmap(tiny_classifier())(x)),
                             rtol=1e-6, atol=1e-6)
  # 3 chunks of 8 per client (the last padded with 4 copies), each its own forward.
  assert counting.counts() == {"calls": 9, "examples": 72}


def test_chunk_size_is_checked_and_refused_for_a_served_model():
  with pytest.raises(ValueError, match="chunk_size"):
    ChunkedBlackBox(tiny_classifier(), 0)
  config = ml_collections.ConfigDict({"blackbox": {"chunk_size": -1, "url": ""}})
  with pytest.raises(ConfigError, match="config.blackbox.chunk_size"):
    check_chunk_size(config)
  config.blackbox.chunk_size = 64
  check_chunk_size(config)
  config.blackbox.url = "http://127.0.0.1:8000"
  with pytest.raises(ConfigError, match="served model"):
    check_chunk_size(config)
