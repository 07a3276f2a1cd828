"""Cohort backends: how the clients of one round are run (vmap, shard, loop)."""

from fedbbpt_jax.parallel.cohort import BACKENDS, CLIENTS_AXIS, clients_mesh, replicate, run_cohort

__all__ = ["BACKENDS", "CLIENTS_AXIS", "clients_mesh", "replicate", "run_cohort"]
