"""Config validation, building, the one driver (``driver.drive``) and its round executors,
records, checkpoints, reports."""

from fedbbpt_jax.train.config_check import ConfigError, validate_config
from fedbbpt_jax.train.simulation import run
from fedbbpt_jax.train.vmapped_sweep import SweepMismatchError, run_vmapped

__all__ = ["ConfigError", "SweepMismatchError", "run", "run_vmapped", "validate_config"]
