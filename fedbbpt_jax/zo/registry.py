"""The estimator registry: config names -> builders ``build(num_directions) -> Estimator``.

Tags say what an estimator works on and returns:

* ``continuous``: any real parameter vector; with ``gradient`` (an unbiased estimate
  of the gradient of a quadratic's smoothed loss) or ``evolution`` (evosax strategies:
  search gradients, or a distribution that sets the parameters);
  ``antithetic`` ones draw +/- pairs (an even count); ``clipped`` ones return a gradient
  estimate clipped to norm ``sqrt(n)`` (ZIP; ``clipping.py``), biased by design;
* ``categorical``: probability-matrix parameters of a discrete prompt (one-hot
  candidates), e.g. BDPL;
* ``replayable``: its update reads only key-derived directions (or samples), the
  candidates' losses, the parameters and its state, so a server can replay a client's
  steps from its key and losses (``client.upload='seeds'``).

Users register their own: ``ESTIMATORS.register("mine", build, tags=("continuous",))``.
"""

from __future__ import annotations

from typing import Callable

from fedbbpt_jax.core import Registry
from fedbbpt_jax.zo import (base, bdpl, clipping, cma_es, coordinate, gaussian, search_gradient,
                            sphere, spsa)

CONTINUOUS, GRADIENT, EVOLUTION, CATEGORICAL = "continuous", "gradient", "evolution", "categorical"
ANTITHETIC = "antithetic"  # draws candidates in +/- pairs: needs an even count
CLIPPED = "clipped"  # a gradient estimate clipped to norm sqrt(n) (biased by design; clipping.py)
REPLAYABLE = "replayable"  # steps replayable from the key and the losses (seed uploads)

ESTIMATORS: Registry[Callable[[int], base.Estimator]] = Registry(
    "zero-order estimator", home="fedbbpt_jax.zo.ESTIMATORS")

for _name, _build in {
    "spsa": lambda n: spsa.make_spsa(n, gradient_correction=False),
    "spsa_gc": lambda n: spsa.make_spsa(n, gradient_correction=True),
    "gaussian": lambda n: gaussian.make_gaussian(n, antithetic=False),
    "gaussian_antithetic": lambda n: gaussian.make_gaussian(n, antithetic=True),
    "sphere": sphere.make_sphere,
    "coordinate": coordinate.make_coordinate,
}.items():
  ESTIMATORS.register(_name, _build, tags=(CONTINUOUS, GRADIENT, REPLAYABLE))

# ZIP's intrinsic-dimensional clipping (zo/clipping.py) of the two SPSA variants.
for _name in ("spsa", "spsa_gc"):
  ESTIMATORS.register(
      f"{_name}_clip",
      lambda n, name=_name: clipping.clipped(ESTIMATORS.get(name)(n), f"{name}_clip"),
      tags=(CONTINUOUS, CLIPPED, REPLAYABLE))

ESTIMATORS.register("cma_es", cma_es.make_cma_es, tags=(CONTINUOUS, EVOLUTION))
for _name in ("open_es", "pgpe"):
  ESTIMATORS.register(_name, lambda n, name=_name: search_gradient.make_search_gradient(name, n),
                      tags=(CONTINUOUS, EVOLUTION, ANTITHETIC))

# BDPL's categorical samples are drawn from the key and the (replayed) probabilities.
ESTIMATORS.register("bdpl", bdpl.make_bdpl, tags=(CATEGORICAL, REPLAYABLE))


def make_estimator(name: str, num_directions: int) -> base.Estimator:
  """Returns the estimator registered as ``name`` with ``num_directions`` directions.

  Raises:
    UnknownNameError: if ``name`` is not registered (the message lists the names).
  """
  return ESTIMATORS.get(name, "zo.estimator")(num_directions)
