"""Zero-order gradient estimators under the ask/tell contract."""

from fedbbpt_jax.zo.base import Estimator
from fedbbpt_jax.zo.hparams import HParams
from fedbbpt_jax.zo.registry import ESTIMATORS, make_estimator

__all__ = ["ESTIMATORS", "Estimator", "HParams", "make_estimator"]
