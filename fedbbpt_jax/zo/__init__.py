"""Zero-order gradient estimators under the ask/tell contract."""

from fedbbpt_jax.zo.base import Estimator
from fedbbpt_jax.zo.hparams import HParams
from fedbbpt_jax.zo.registry import (ANTITHETIC, CATEGORICAL, CLIPPED, CONTINUOUS, ESTIMATORS,
                                     EVOLUTION, GRADIENT, REPLAYABLE, make_estimator)

__all__ = ["ANTITHETIC", "CATEGORICAL", "CLIPPED", "CONTINUOUS", "ESTIMATORS", "EVOLUTION",
           "Estimator", "GRADIENT", "HParams", "REPLAYABLE", "make_estimator"]
