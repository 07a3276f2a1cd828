"""Maps estimator names used in configs to builders."""

from __future__ import annotations

from typing import Callable

from fedbbpt_jax.zo import base, gaussian, spsa

_BUILDERS: dict[str, Callable[[int], base.Estimator]] = {
    "spsa": lambda n: spsa.make_spsa(n, gradient_correction=False),
    "spsa_gc": lambda n: spsa.make_spsa(n, gradient_correction=True),
    "gaussian": lambda n: gaussian.make_gaussian(n, antithetic=False),
    "gaussian_antithetic": lambda n: gaussian.make_gaussian(n, antithetic=True),
}

ESTIMATORS: tuple[str, ...] = tuple(sorted(_BUILDERS))


def make_estimator(name: str, num_directions: int) -> base.Estimator:
  """Returns the estimator registered as ``name`` with ``num_directions`` directions.

  Raises:
    ValueError: if ``name`` is not registered (the message lists the names).
  """
  if name not in _BUILDERS:
    raise ValueError(f"unknown zero-order estimator {name!r}; choose one of {list(ESTIMATORS)}")
  return _BUILDERS[name](num_directions)
