"""Experiment driver: config validation, building, round loop, checkpoints, reports."""

from fedbbpt_jax.train.config_check import ConfigError, validate_config
from fedbbpt_jax.train.loop import run

__all__ = ["ConfigError", "run", "validate_config"]
