"""Config field checks shared by every layer: each failure names the field, value and range.

Example:
    >>> check_number(config, "client.lr", low=0, low_inclusive=False)
    >>> check_choice(config, "zo.estimator", ESTIMATORS.names())
    ConfigError: config.zo.estimator='spsaa' is not one of ['bdpl', 'cma_es', ...]
"""

from __future__ import annotations

import math
from typing import Any, Iterable


MAX_SEED = 2**63 - 1  # jax.random.key takes a signed 64-bit seed (OverflowError above)


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


def range_text(low: float | None = None, high: float | None = None,
               low_inclusive: bool = True, high_inclusive: bool = True) -> str:
  """``'>= 0'``, ``'> 0'``, ``'<= 1'``, ``'< 1'``, ``'in [0, 1]'``, ``'in (0, 1)'`` ...;
  ``''`` if unbounded."""
  if low is not None and high is not None:
    return (f"in {'[' if low_inclusive else '('}{low}, {high}"
            f"{']' if high_inclusive else ')'}")
  if low is not None:
    return f"{'>=' if low_inclusive else '>'} {low}"
  if high is not None:
    return f"{'<=' if high_inclusive else '<'} {high}"
  return ""


def check_number(config: Any, field: str, *, low: float | None = None,
                 high: float | None = None, integer: bool = False,
                 low_inclusive: bool = True, high_inclusive: bool = True,
                 hint: str = "") -> None:
  """``config.<field>`` must be a finite number (an ``int`` if asked) between ``low`` and ``high``.

  NaN and infinities are refused whatever the range (they would pass every comparison
  or poison every sum); with ``integer`` a float such as ``5.0`` is refused too. A
  value below ``low`` is told the lower bound (``must be >= 0``), one above an
  inclusive ``high`` the upper bound (``must be <= 1``), one at or above an exclusive
  ``high`` the whole range (``must be in [0, 1)``); ``hint`` (what the field means) is
  appended in parentheses.
  """
  value = get_field(config, field)
  allowed = range_text(low, high, low_inclusive, high_inclusive)
  allowed = " " + allowed if allowed else ""
  why = f" ({hint})" if hint else ""
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise ConfigError(f"config.{field}={value!r} must be "
                      f"{'an integer' if integer else 'a number'}{allowed}{why}")
  if integer and not isinstance(value, int):
    raise ConfigError(f"config.{field}={value!r} must be an integer{allowed}{why}")
  if isinstance(value, float) and not math.isfinite(value):  # ints are finite
    raise ConfigError(f"config.{field}={value!r} must be a finite number{allowed}{why}")
  if low is not None and (value < low if low_inclusive else value <= low):
    op = ">=" if low_inclusive else ">"
    raise ConfigError(f"config.{field}={value!r} must be {op} {low}{why}")
  if high is not None and (value > high if high_inclusive else value >= high):
    bound = f"<= {high}" if high_inclusive else allowed.strip()
    raise ConfigError(f"config.{field}={value!r} must be {bound}{why}")


def check_bool(config: Any, field: str) -> None:
  """``config.<field>`` must be ``True`` or ``False`` (not 0/1, not a string)."""
  value = get_field(config, field)
  if not isinstance(value, bool):
    raise ConfigError(f"config.{field}={value!r} must be True or False")


def check_string(config: Any, field: str, *, non_empty: bool = False, hint: str = "") -> None:
  """``config.<field>`` must be a string (non-empty if asked); ``hint`` says what it is for."""
  value = get_field(config, field)
  if not isinstance(value, str) or (non_empty and not value.strip()):
    kind = "a non-empty string" if non_empty else "a string"
    raise ConfigError(f"config.{field}={value!r} must be {kind}{': ' + hint if hint else ''}")
