"""Zero-order gradient estimators under the ask/tell contract."""

from fedbbpt_jax.zo.base import Estimator
from fedbbpt_jax.zo.hparams import HParams
from fedbbpt_jax.zo.registry import (CATEGORICAL_ESTIMATORS, ESTIMATORS, EVOLUTION_STRATEGIES,
                                     GRADIENT_ESTIMATORS, make_estimator)

__all__ = ["CATEGORICAL_ESTIMATORS", "ESTIMATORS", "EVOLUTION_STRATEGIES", "Estimator",
           "GRADIENT_ESTIMATORS", "HParams", "make_estimator"]
