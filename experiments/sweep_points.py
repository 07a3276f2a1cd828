"""Sweep points: load a sweep file, build each point's config, apply dotted overrides.

A sweep file ``configs/sweeps/NAME.py`` defines ``get_sweep()`` returning a list of
``{"config": "configs/X.py[:mode]", "overrides": {"a.b": value}, "name": "short"}``.
Every point's config is built and validated before anything runs, so a bad key, a
bad type or an invalid value fails at once, naming the point and the field.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from typing import Any

import ml_collections

from fedbbpt_jax.train import validate_config

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class SweepError(ValueError):
  """A sweep file or one of its points is malformed."""


@dataclasses.dataclass(frozen=True)
class Point:
  """One run of a sweep: its name, config spec, overrides and the built config."""

  name: str
  config_spec: str
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict

  def describe(self) -> dict[str, Any]:
    """Returns the JSON-able description written to ``sweep.json``."""
    return {"name": self.name, "config": self.config_spec, "overrides": dict(self.overrides)}


def load_module(path: str) -> Any:
  """Returns the Python module at ``path`` (imported under a private name)."""
  if not os.path.isfile(path):
    raise SweepError(f"no such file {path!r}")
  name = "_sweep_" + re.sub(r"\W", "_", os.path.abspath(path))
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Returns ``get_config(mode)`` of a ``path[:mode]`` config spec."""
  path, _, mode = spec.partition(":")
  module = load_module(path)
  if not hasattr(module, "get_config"):
    raise SweepError(f"config file {path!r} has no get_config()")
  return module.get_config(mode) if mode else module.get_config()


def apply_override(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  """Sets ``config.<dotted> = value`` in place, requiring the key to exist.

  Types are checked by ``ConfigDict`` (an int may go where a float is; a list is
  stored as a tuple where the config holds a tuple).

  Raises:
    SweepError: naming the key if it (or a parent) is not in the config, or the
      value has the wrong type.
  """
  *parents, leaf = dotted.split(".")
  node = config
  for i, part in enumerate(parents):
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise SweepError(f"override key {dotted!r}: {'.'.join(parents[:i + 1])!r} is not a "
                       "section of the config")
    node = node[part]
  if leaf not in node:
    raise SweepError(f"override key {dotted!r}: no field {leaf!r} in the config "
                     f"(known here: {sorted(node.keys())})")
  if isinstance(node[leaf], tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    node[leaf] = value
  except TypeError as e:
    raise SweepError(f"override key {dotted!r}: {e}") from e


def build_point(raw: dict[str, Any], index: int) -> Point:
  """Returns the ``Point`` of one raw sweep entry, its config overridden and validated."""
  missing = {"config", "name"} - set(raw)
  if missing or set(raw) - {"config", "overrides", "name"}:
    raise SweepError(f"sweep point #{index} {raw!r}: needs keys 'config', 'name' and "
                     "optionally 'overrides'")
  name = raw["name"]
  if not isinstance(name, str) or not _NAME.match(name):
    raise SweepError(f"sweep point #{index}: name {name!r} must be letters, digits, '_.-'")
  overrides = dict(raw.get("overrides", {}))
  config = load_config(raw["config"])
  try:
    for dotted, value in overrides.items():
      apply_override(config, dotted, value)
    validate_config(config)
  except ValueError as e:  # SweepError and ConfigError
    raise SweepError(f"sweep point {name!r}: {e}") from e
  return Point(name=name, config_spec=raw["config"], overrides=overrides, config=config)


def load_sweep(path: str, only: str = "") -> list[Point]:
  """Returns every point of the sweep at ``path`` (names containing ``only``), validated.

  Raises:
    SweepError: on a malformed file, duplicate names, a bad override or config.
  """
  module = load_module(path)
  if not hasattr(module, "get_sweep"):
    raise SweepError(f"sweep file {path!r} has no get_sweep()")
  raws = module.get_sweep()
  names = [r.get("name") for r in raws]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise SweepError(f"sweep {path!r}: duplicate point names {dupes}")
  points = [build_point(raw, i) for i, raw in enumerate(raws)]  # all checked, even if filtered
  points = [p for p in points if only in p.name]
  if not points:
    raise SweepError(f"sweep {path!r}: no point name contains {only!r}")
  return points
