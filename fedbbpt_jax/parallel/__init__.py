"""Cohort backends: how the clients of one round are run (vmap, shard, loop), and the
chunked runner of a partly filled (Poisson) cohort."""

from fedbbpt_jax.parallel.cohort import BACKENDS, CLIENTS_AXIS, clients_mesh, replicate, run_cohort
from fedbbpt_jax.parallel.partial_cohort import run_partial_cohort

__all__ = ["BACKENDS", "CLIENTS_AXIS", "clients_mesh", "replicate", "run_cohort",
           "run_partial_cohort"]
