"""The command line of the launchers that take ``--config=FILE[:MODE]``: a refused config
ends in one line ``error: <message>`` on stderr and exit status 2, never a traceback.

``ml_collections.config_flags`` applies every ``--config.a.b=V`` override while absl
parses the flags (``_ConfigFlag._parse`` asks the loaded ``ConfigDict`` for each field's
type): an unknown field raises a bare ``AttributeError`` there, which absl does not
catch, so the user got a 55-line chained traceback ending in
``AttributeError: "'learning_rate'"``. ``parse_flags`` (absl's ``flags_parser``) loads
the config file itself first, checks every override's field against it, and turns any
flag error into one line; ``refusing_config_errors`` wraps a launcher's ``main`` so that
a ``ConfigError`` raised during the run (its config validation comes first, before
anything is loaded) does the same.

    python -m experiments.train --config=configs/fmnist_effnet.py:smoke --workdir=/tmp/x \\
        --config.client.learning_rate=0.1
    error: config.client.learning_rate=0.1: learning_rate is not a field of config.client;
    its fields are ['batch_size', 'local_steps', 'lr', ...]     (one line)

``--imports=my_pkg.plugins[,other]`` (every launcher that uses ``run``): user modules
imported before the config file is read, so the datasets, algorithms, models ... they
register are names the config may use (``fedbbpt_jax.core.plugins``).

Usage in a launcher: ``run(main)`` instead of ``app.run(main)``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
from typing import Any, Callable, NoReturn, Sequence

import ml_collections
from absl import app, flags

from fedbbpt_jax.core import ConfigError, import_plugins

USAGE_ERROR = 2  # exit status of a refused command line or config
CONFIG_FLAG = "config"
IMPORTS_FLAG = "imports"

flags.DEFINE_list(IMPORTS_FLAG, [], "user modules to import before the config is read "
                  "(comma-separated dotted names; they register datasets, algorithms, ...)")


def fail(message: str) -> NoReturn:
  """Prints ``error: <message>`` (one line) on stderr and exits with ``USAGE_ERROR``."""
  print("error: " + " ".join(str(message).split("\n")), file=sys.stderr, flush=True)
  sys.exit(USAGE_ERROR)


def config_arguments(argv: Sequence[str], name: str = CONFIG_FLAG
                     ) -> tuple[str | None, list[tuple[str, str | None]]]:
  """``(config spec, [(dotted field, value as typed or None)])`` of ``argv``.

  Reads the forms ``config_flags`` accepts: ``--config=SPEC`` / ``--config SPEC``, and
  ``--config.a.b=V``, ``--config.a.b V``, ``--config.a.b`` / ``--noconfig.a.b``
  (booleans: value ``None``); one or two dashes; parsing stops at ``--``.
  """
  spec, overrides = None, []
  args = list(argv[1:])
  for i, arg in enumerate(args):
    if arg == "--":
      break
    value_next = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
    whole = re.match(rf"^-{{1,2}}{re.escape(name)}(=(.*))?$", arg)
    if whole:
      spec = whole.group(2) if whole.group(1) else value_next
      continue
    field = re.match(rf"^-{{1,2}}(no)?{re.escape(name)}\.([^=]+)(=(.*))?$", arg)
    if field:
      value = field.group(4) if field.group(3) else (None if field.group(1) else value_next)
      overrides.append((field.group(2), value))
  return spec, overrides


def imports_argument(argv: Sequence[str]) -> list[str]:
  """The module names given by ``--imports=a,b`` / ``--imports a,b`` (repeatable)."""
  names: list[str] = []
  args = list(argv[1:])
  for i, arg in enumerate(args):
    if arg == "--":
      break
    match = re.match(rf"^-{{1,2}}{IMPORTS_FLAG}(=(.*))?$", arg)
    if match:
      value = match.group(2) if match.group(1) else (args[i + 1] if i + 1 < len(args) else "")
      names.extend(n for n in value.split(",") if n.strip())
  return names


def load_config(spec: str) -> Any:
  """``get_config(mode)`` of the config file of ``spec`` (``path[:mode]``).

  Raises:
    ConfigError: no such file, no ``get_config``, or ``get_config`` refused the mode
      (its message kept).
  """
  path, _, mode = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"--{CONFIG_FLAG}={spec}: no such config file {path!r}")
  module_spec = importlib.util.spec_from_file_location("_cli_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"--{CONFIG_FLAG}={spec}: {path!r} has no get_config()")
  try:
    return module.get_config(mode) if mode else module.get_config()
  except ValueError as e:  # e.g. an unknown mode
    raise ConfigError(f"--{CONFIG_FLAG}={spec}: {e}") from e


def unknown_field(config: Any, dotted: str) -> str | None:
  """Why ``config.<dotted>`` is not a field of ``config`` (``None`` if it is one)."""
  node, path = config, CONFIG_FLAG
  for part in dotted.split("."):
    if not isinstance(node, (ml_collections.ConfigDict, dict)):
      return f"{path} is a value ({node!r}), not a block of fields"
    if part not in node:
      return f"{part} is not a field of {path}; its fields are {sorted(node.keys())}"
    node, path = node[part], f"{path}.{part}"
  return None


def check_overrides(argv: Sequence[str]) -> None:
  """Raises ``ConfigError`` for the first ``--config.<field>`` override that names no
  field of the config file's config (naming the field, the value and the block's
  fields), or for a config file that cannot be loaded."""
  argv = flags.FLAGS.read_flags_from_files(list(argv), force_gnu=False)  # --flagfile=...
  import_plugins(imports_argument(argv))  # before the config file: it may name their entries
  spec, overrides = config_arguments(argv)
  if not spec:
    return  # absl reports the missing --config
  config = load_config(spec)
  for dotted, value in overrides:
    why = unknown_field(config, dotted)
    if why:
      given = f"config.{dotted}" + ("" if value is None else f"={value}")
      raise ConfigError(f"{given}: {why}")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's ``flags_parser``: imports the ``--imports`` modules, checks the config
  overrides, then parses the flags; any refusal is one line on stderr and exit status 2
  (``fail``)."""
  try:
    check_overrides(argv)
    return flags.FLAGS(argv)
  except (ConfigError, flags.Error) as e:
    fail(str(e))


def refusing_config_errors(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
  """``main`` that turns a ``ConfigError`` into one line on stderr and exit status 2."""

  @functools.wraps(main)
  def wrapped(argv: list[str]) -> Any:
    try:
      return main(argv)
    except ConfigError as e:
      fail(str(e))

  return wrapped


def run(main: Callable[[list[str]], Any]) -> None:
  """``app.run(main)`` with one-line refusals of the command line and the config."""
  app.run(refusing_config_errors(main), flags_parser=parse_flags)
