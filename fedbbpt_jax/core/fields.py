"""Config field checks shared by every layer: each failure names the field, value and range.

A field set to a value other than its default where the run would not read it is
refused too (``refuse_unread``; the rule is stated in ``train/config_check.py``).

Example:
    >>> check_number(config, "client.lr", low=0, low_inclusive=False)
    >>> check_choice(config, "zo.estimator", ESTIMATORS.names())
    ConfigError: config.zo.estimator='spsaa' is not one of ['bdpl', 'cma_es', ...]
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping


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


def has_field(config: Any, field: str) -> bool:
  """Whether ``config`` has the dotted ``field``."""
  node: Any = config
  for part in field.split("."):
    if not hasattr(node, "__contains__") or isinstance(node, str) or part not in node:
      return False
    node = node[part]
  return True


def check_choice(config: Any, field: str, allowed: Iterable[str], hint: str = "") -> None:
  """``config.<field>`` must be one of ``allowed``; ``hint`` ends the refusal (e.g. how to
  register a name: ``check_registered`` does that for a whole registry)."""
  value = get_field(config, field)
  allowed = tuple(allowed)
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of {sorted(allowed)}"
                      f"{', ' + hint if hint else ''}")


def check_registered(config: Any, field: str, registry: Any, tag: str | None = None) -> None:
  """``config.<field>`` must name an entry of ``registry`` (with ``tag`` if given); the
  refusal lists the names and says how to register one (``Registry.how_to_register``)."""
  value = get_field(config, field)
  allowed = registry.names(tag)
  if value not in allowed:
    raise ConfigError(f"config.{field}={value!r} is not one of {sorted(allowed)}, "
                      f"{registry.how_to_register(value, tag)}")


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


def is_set(value: Any, default: Any) -> bool:
  """Whether ``value`` differs from ``default``: the test of ``refuse_unread``.

  Equal numbers are the same setting (``1`` and ``1.0``), a bool never equals a number.
  """
  return not (value == default and isinstance(value, bool) == isinstance(default, bool))


def assignment(field: str, values: Iterable[Any]) -> str:
  """``"config.<field>='a'"``, or ``"config.<field> to one of ['a', 'b']"``."""
  values = list(values)
  if len(values) == 1:
    return f"config.{field}={values[0]!r}"
  return f"config.{field} to one of {values}"


def ignored_error(field: str, value: Any, default: Any, why: str, fix: str) -> ConfigError:
  """The refusal of ``config.<field>=value`` that the run would ignore.

  Args:
    why: why nothing reads it (e.g. "it is read only when config.server.aggregator=
      'dp_gaussian' (this run: 'weighted_mean')").
    fix: what makes it apply (e.g. "set config.server.aggregator='dp_gaussian' to
      apply it").
  """
  return ConfigError(f"config.{field}={value!r} would be ignored: {why}; {fix}, "
                     f"or leave it at its default {default!r}")


def refuse_unread(config: Any, choice: str, reads: Mapping[str, Mapping[str, Any]],
                  fix: Callable[[list[str]], str] | None = None) -> None:
  """Refuses a field that the value chosen at ``config.<choice>`` does not read, set to
  another value than its default, while another value of ``choice`` would read it.

  Args:
    config: the experiment config.
    choice: the dotted field that picks the reader (``'server.aggregator'``,
      ``'attack.kind'``, ...).
    reads: ``{value of choice: {dotted field it reads: the field's default}}`` (a
      registry's ``all_reads()``); fields the config lacks are skipped.
    fix: ``readers -> text`` saying what to set so that one of ``readers`` (the values
      that read the field) applies (default: ``set config.<choice>=<reader> to apply
      it``).

  Raises:
    ConfigError: naming the first such field, its value, the values of ``choice`` that
      read it, the chosen one, and the field's default (``ignored_error``).
  """
  chosen = get_field(config, choice)
  own = reads.get(chosen, {})
  fields: dict[str, tuple[Any, list[str]]] = {}
  for name, read in reads.items():
    for field, default in read.items():
      fields.setdefault(field, (default, []))[1].append(name)
  for field, (default, readers) in fields.items():
    if field in own or not has_field(config, field):
      continue
    value = get_field(config, field)
    if not is_set(value, default):
      continue
    readers = sorted(readers)
    when = (f"config.{choice}={readers[0]!r}" if len(readers) == 1
            else f"config.{choice} is one of {readers}")
    text = fix(readers) if fix else f"set {assignment(choice, readers)} to apply it"
    raise ignored_error(field, value, default,
                        f"it is read only when {when} (this run: {chosen!r})", text)
