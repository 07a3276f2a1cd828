"""Maps estimator names used in configs to builders."""

from __future__ import annotations

from typing import Callable

from fedbbpt_jax.zo import (base, bdpl, cma_es, coordinate, gaussian, search_gradient, sphere,
                            spsa)

_BUILDERS: dict[str, Callable[[int], base.Estimator]] = {
    "spsa": lambda n: spsa.make_spsa(n, gradient_correction=False),
    "spsa_gc": lambda n: spsa.make_spsa(n, gradient_correction=True),
    "gaussian": lambda n: gaussian.make_gaussian(n, antithetic=False),
    "gaussian_antithetic": lambda n: gaussian.make_gaussian(n, antithetic=True),
    "sphere": sphere.make_sphere,
    "coordinate": coordinate.make_coordinate,
}

# Evolution strategies (evosax): search gradients, or a distribution that sets the parameters.
_ES_BUILDERS: dict[str, Callable[[int], base.Estimator]] = {
    "cma_es": cma_es.make_cma_es,
    "open_es": lambda n: search_gradient.make_search_gradient("open_es", n),
    "pgpe": lambda n: search_gradient.make_search_gradient("pgpe", n),
}

# Estimators whose ``tell`` is an unbiased estimate of the gradient of a quadratic.
GRADIENT_ESTIMATORS: tuple[str, ...] = tuple(sorted(_BUILDERS))
EVOLUTION_STRATEGIES: tuple[str, ...] = tuple(sorted(_ES_BUILDERS))
_BUILDERS.update(_ES_BUILDERS)

ESTIMATORS: tuple[str, ...] = tuple(sorted(_BUILDERS))

# Estimators over categorical prompts (probability-matrix parameters, one-hot candidates).
_CATEGORICAL_BUILDERS: dict[str, Callable[[int], base.Estimator]] = {
    "bdpl": lambda n: bdpl.make_bdpl(n),
}
CATEGORICAL_ESTIMATORS: tuple[str, ...] = tuple(sorted(_CATEGORICAL_BUILDERS))


def make_estimator(name: str, num_directions: int) -> base.Estimator:
  """Returns the estimator registered as ``name`` with ``num_directions`` directions.

  Raises:
    ValueError: if ``name`` is not registered (the message lists the names).
  """
  if name in _CATEGORICAL_BUILDERS:
    return _CATEGORICAL_BUILDERS[name](num_directions)
  if name not in _BUILDERS:
    raise ValueError(f"unknown zero-order estimator {name!r}; choose one of "
                     f"{list(ESTIMATORS + CATEGORICAL_ESTIMATORS)}")
  return _BUILDERS[name](num_directions)
