"""The bottom layer every other layer shares: named registries and config field checks.

Nothing here imports from the rest of the package.
"""

from fedbbpt_jax.core.fields import (MAX_SEED, ConfigError, assignment, check_bool,
                                     check_choice, check_number, check_registered,
                                     check_string, get_field, has_field, ignored_error, is_set,
                                     range_text, refuse_unread)
from fedbbpt_jax.core.plugins import import_plugins, plugin_modules
from fedbbpt_jax.core.registry import Registry, UnknownNameError

__all__ = ["MAX_SEED", "ConfigError", "Registry", "UnknownNameError", "assignment",
           "check_bool", "check_choice", "check_number", "check_registered", "check_string",
           "get_field", "has_field", "ignored_error", "import_plugins", "is_set",
           "plugin_modules", "range_text", "refuse_unread"]
