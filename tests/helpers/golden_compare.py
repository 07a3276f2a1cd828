"""Comparing the Flax ports with the stored ``transformers`` outputs (``tests/data``).

``run`` calls a jitted function with float32 matrix products at full precision (the
default on CPUs; accelerators would otherwise use reduced-precision passes), and
``max_error`` is the largest absolute difference, shapes checked.
"""

import os

import jax
import numpy as np

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
ATOL = 1e-5  # float32, absolute, every comparison with transformers


def run(fn, *args) -> np.ndarray:
  with jax.default_matmul_precision("highest"):
    return np.asarray(fn(*args))


def max_error(actual, expected) -> float:
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  return float(np.max(np.abs(actual - expected)))


def seeded_pixels(seed: int, count: int, side: int) -> np.ndarray:
  """The NHWC inputs the golden script drew for the full-size checks (not stored)."""
  return np.random.default_rng(seed).standard_normal((count, side, side, 3), dtype=np.float32)
