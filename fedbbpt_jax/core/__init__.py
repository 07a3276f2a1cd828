"""The bottom layer every other layer shares: named registries and config field checks.

Nothing here imports from the rest of the package.
"""

from fedbbpt_jax.core.fields import (MAX_SEED, ConfigError, check_bool, check_choice,
                                     check_number, check_string, get_field, range_text)
from fedbbpt_jax.core.registry import Registry, UnknownNameError

__all__ = ["MAX_SEED", "ConfigError", "Registry", "UnknownNameError", "check_bool",
           "check_choice", "check_number", "check_string", "get_field", "range_text"]
