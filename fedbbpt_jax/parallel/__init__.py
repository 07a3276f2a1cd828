"""Cohort backends: how the clients of one round are run (vmap, loop)."""

from fedbbpt_jax.parallel.cohort import BACKENDS, run_cohort

__all__ = ["BACKENDS", "run_cohort"]
