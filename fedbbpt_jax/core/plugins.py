"""User plugin modules: code of yours that registers entries before a config is read.

Datasets, algorithms, aggregators, black boxes, prompts, task families ... are registry
entries (``core/registry.py``). A launcher given ``--imports=my_pkg.plugins,other``
imports those modules first, so that a config naming ``data.name='my_set'`` finds the
dataset ``my_pkg/plugins.py`` registered, with no file of the library edited::

    # my_pkg/plugins.py
    from fedbbpt_jax.data import DATASETS
    DATASETS.register("my_set", load_my_set, tags=("image",))

    python -m experiments.train --imports=my_pkg.plugins --config=... \\
        --config.data.name=my_set

The modules are imported in the order given, each once per process (Python's own
module cache), from the current directory or the installed packages.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Iterable

from fedbbpt_jax.core.fields import ConfigError

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def plugin_modules(spec: str | Iterable[str]) -> list[str]:
  """The module names of ``spec``: a comma-separated string or a list of names.

  Raises:
    ConfigError: a name that is not a dotted Python module name (a file path, say).
  """
  names = spec.split(",") if isinstance(spec, str) else list(spec)
  names = [n.strip() for n in names if n.strip()]
  for name in names:
    if "/" in name or "\\" in name or name.endswith(".py"):
      raise ConfigError(f"--imports={name}: not a dotted Python module name (a module "
                        "name, not a file: my_pkg/plugins.py is imported as my_pkg.plugins)")
    if not _MODULE_NAME.match(name):
      raise ConfigError(f"--imports={name}: not a dotted Python module name")
  return names


def import_plugins(spec: str | Iterable[str]) -> list[ModuleType]:
  """Imports every module of ``spec`` (see ``plugin_modules``), in order.

  Raises:
    ConfigError: naming the module that could not be imported and why (the module
      missing, or the exception its own code raised).
  """
  modules = []
  for name in plugin_modules(spec):
    try:
      modules.append(importlib.import_module(name))
    except ModuleNotFoundError as e:
      if e.name and name.startswith(e.name):
        raise ConfigError(f"--imports={name}: no module {e.name!r} on the Python path "
                          "(run from the folder that holds it, or install its package)"
                          ) from e
      raise ConfigError(f"--imports={name}: importing it failed: {e}") from e
    except Exception as e:  # the plugin's own code failed: say which and why
      raise ConfigError(f"--imports={name}: importing it failed "
                        f"({type(e).__name__}: {e})") from e
  return modules
