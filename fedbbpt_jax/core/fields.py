"""Config field checks shared by every layer: each failure names the field, value and range.

Example:
    >>> check_number(config, "client.lr", low=0, low_inclusive=False)
    >>> check_choice(config, "zo.estimator", ESTIMATORS.names())
    ConfigError: config.zo.estimator='spsaa' is not one of ['bdpl', 'cma_es', ...]
"""

from __future__ import annotations

from typing import Any, Iterable


class ConfigError(ValueError):
  """A config value is missing, of the wrong type, or out of range."""


def get_field(config: Any, field: str) -> Any:
  """The value at dotted ``field`` of ``config``; ``ConfigError`` naming it if absent."""
  node: Any = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(f"config field {field!r} is missing")
    node = node[part]
  return node


def check_choice(config: Any, field: str, allowed: Iterable[str]) -> None:
  """``config.<field>`` must be one of ``allowed`` (e.g. a registry's names)."""
  value = get_field(config, field)
  allowed = tuple(allowed)
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of {sorted(allowed)}")


def check_number(config: Any, field: str, *, low: float | None = None,
                 high: float | None = None, integer: bool = False,
                 low_inclusive: bool = True) -> None:
  """``config.<field>`` must be a number (an integer if asked) in ``[low, high]``."""
  value = get_field(config, field)
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(f"config.{field}={value!r} must be a number")
  if integer and int(value) != value:
    raise ConfigError(f"config.{field}={value!r} must be an integer")
  if low is not None and (value < low if low_inclusive else value <= low):
    op = ">=" if low_inclusive else ">"
    raise ConfigError(f"config.{field}={value!r} must be {op} {low}")
  if high is not None and value > high:
    raise ConfigError(f"config.{field}={value!r} must be <= {high}")


def check_string(config: Any, field: str, *, non_empty: bool = False, hint: str = "") -> None:
  """``config.<field>`` must be a string (non-empty if asked); ``hint`` says what it is for."""
  value = get_field(config, field)
  if not isinstance(value, str) or (non_empty and not value.strip()):
    kind = "a non-empty string" if non_empty else "a string"
    raise ConfigError(f"config.{field}={value!r} must be {kind}{': ' + hint if hint else ''}")
