"""What a Flower deployment is configured by: the run config, the node config, the
experiment config on the wire.

* **Run config** (``[tool.flwr.app.config]`` of the app, overridden with ``flwr run
  --run-config``), read by the server: ``config`` (an experiment config file
  ``path.py[:mode]``), ``overrides`` (``"client.upload=seeds train.rounds=2"``),
  ``workdir`` (the server's run directory: checkpoints, metrics, summary; rerunning
  with the same workdir resumes), ``round-timeout`` (seconds to wait for a round's
  replies; a node that has not answered by then counts as dropped), ``setup-timeout``
  (seconds to wait for the nodes' answers to a set-up statistic: a node's first answer
  includes starting its worker and building the experiment), ``min-nodes``
  (partitions that must be connected before round 1; 0 = every client) and
  ``discover-timeout`` (seconds to wait for them) and ``download`` (``'dense'``: the
  global model; ``'seeds'``: the rounds' seed uploads, replayed by the node,
  ``seed_download.py``) and ``imports`` (the server's plugin modules, comma-separated,
  imported before the config is read: ``fedbbpt_jax.core.plugins``).
* **Node config** (``flower-supernode --node-config``), read by each client:
  ``partition-id`` (which client of ``config.data`` this node is; required),
  ``workdir`` (the node's cache directory), ``blackbox-url`` and ``api-key-env`` (the
  model provider this node calls and the environment variable holding ITS key),
  ``overrides`` (node-local fields only: data directories and connection settings,
  ``NODE_LOCAL_FIELDS``), ``imports`` (the node's own plugin modules, e.g. the dataset
  or model the run names; a node imports only what its own config lists, never what
  the server asks for) and ``train-delay-seconds`` (a straggler: sleep before training;
  for fault drills), ``worker`` (``true``: the node's rounds run in a long-lived worker
  process that keeps the built experiment and its compiled step, ``worker.py``;
  ``false``: in the ClientApp process Flower starts for each message; ``"auto"``, the
  default: a worker when the ClientApp runs in such a per-message process) and
  ``worker-idle-seconds`` (the worker exits after that long without a request).
* **The experiment config** travels from the server to every node as JSON inside the
  train message, so nodes need no config file and cannot drift from the server.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from typing import Any, Mapping

import ml_collections

from fedbbpt_jax.core import ConfigError

RUN_CONFIG_DEFAULTS = {"config": "configs/fmnist_effnet.py:smoke", "overrides": "",
                       "workdir": "", "round-timeout": 600.0, "setup-timeout": 600.0,
                       "min-nodes": 0,
                       "discover-timeout": 120.0, "download": "dense", "imports": ""}
# Fields a node may set for itself: where its data lie and how it reaches the provider.
NODE_LOCAL_FIELDS = ("data.source_dir", "data.tfds_dir", "blackbox.url", "blackbox.api_key_env",
                     "blackbox.max_attempts", "blackbox.backoff_seconds",
                     "blackbox.timeout_seconds", "blackbox.max_concurrency",
                     "blackbox.chunk_size",
                     # the instruction family's black-box LLM and the open generator's copy
                     "llm.url", "llm.api_key_env", "llm.max_concurrency", "llm.model_path",
                     "generator.model_path")
DEFAULT_NODE_WORKDIR = os.path.join("~", ".cache", "fedbbpt_jax", "flower")


def _parse_value(field: str, current: Any, text: str) -> Any:
  """``text`` as the type of the field's current value (bool, int, float, str, tuple)."""
  try:
    if isinstance(current, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
      return text.lower() in ("true", "1")
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, tuple):
      return tuple(s for s in text.split(",") if s)
  except ValueError:
    raise ConfigError(f"override {field}={text!r}: expected a {type(current).__name__}, like "
                      f"the current value {current!r}") from None
  return text


def apply_overrides(config: ml_collections.ConfigDict, text: str,
                    allowed: tuple[str, ...] | None = None,
                    source: str = "overrides") -> ml_collections.ConfigDict:
  """``config`` with ``"a.b=v c=w"`` applied (each value typed like the field's).

  Raises:
    ConfigError: a malformed item, an unknown field, a value of the wrong type, or a
      field outside ``allowed`` (each message names ``source`` and the item).
  """
  config = ml_collections.ConfigDict(config.to_dict())
  for item in text.split():
    field, sep, value = item.partition("=")
    if not sep or not field:
      raise ConfigError(f"{source}: {item!r} is not of the form field=value")
    if allowed is not None and field not in allowed:
      raise ConfigError(f"{source}: {field!r} cannot be set here; allowed: {list(allowed)}")
    node, parts = config, field.split(".")
    for part in parts[:-1]:
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise ConfigError(f"{source}: config has no section {field.rsplit('.', 1)[0]!r}")
      node = node[part]
    if parts[-1] not in node:
      raise ConfigError(f"{source}: config field {field!r} does not exist")
    node[parts[-1]] = _parse_value(field, node[parts[-1]], value)
  return config


def resolve_config_path(path: str) -> str:
  """``path`` as given, else relative to the checkout fedbbpt_jax was installed from."""
  if os.path.isfile(path):
    return os.path.abspath(path)
  checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  candidate = os.path.join(checkout, path)
  if not os.path.isabs(path) and os.path.isfile(candidate):
    return candidate
  raise ConfigError(f"run config 'config': no file {path!r} (looked in {os.getcwd()} and "
                    f"{checkout}); give an absolute path")


def load_config(spec: str, overrides: str = "") -> ml_collections.ConfigDict:
  """The experiment config of ``path.py[:mode]`` (its ``get_config(mode)``), overridden.

  A file inside a ``configs/`` directory may import its siblings as ``configs.<name>``
  (as the project's configs do): the directory above is put on ``sys.path``.
  """
  path, _, mode = spec.partition(":")
  path = resolve_config_path(path)
  if os.path.basename(os.path.dirname(path)) == "configs":
    root = os.path.dirname(os.path.dirname(path))
    if root not in sys.path:
      sys.path.insert(0, root)
  module_spec = importlib.util.spec_from_file_location(
      "fedbbpt_flower_config_" + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(mode) if mode else module.get_config()
  return apply_overrides(config, overrides, source="run config 'overrides'")


def _tuples(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def config_to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json(sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  """The config ``config_to_json`` wrote (JSON lists back to tuples)."""
  return ml_collections.ConfigDict(_tuples(json.loads(text)))


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """The run config, typed (see the module docstring)."""

  config: str
  overrides: str
  workdir: str
  round_timeout: float
  min_nodes: int
  discover_timeout: float
  download: str = "dense"
  imports: str = ""
  setup_timeout: float = 600.0


def run_settings(run_config: Mapping[str, Any]) -> RunSettings:
  """Reads the run config; ``ConfigError`` naming a missing or bad key."""
  values = {**RUN_CONFIG_DEFAULTS, **dict(run_config)}
  if not str(values["workdir"]):
    raise ConfigError("run config 'workdir' is empty: name the server's run directory, e.g. "
                      "flwr run . <federation> --run-config \"workdir='/srv/fedbbpt/run1'\"")
  try:
    settings = RunSettings(config=str(values["config"]), overrides=str(values["overrides"]),
                           workdir=os.path.abspath(os.path.expanduser(str(values["workdir"]))),
                           round_timeout=float(values["round-timeout"]),
                           min_nodes=int(values["min-nodes"]),
                           discover_timeout=float(values["discover-timeout"]),
                           download=str(values["download"]),
                           imports=str(values["imports"]),
                           setup_timeout=float(values["setup-timeout"]))
  except (TypeError, ValueError) as e:
    raise ConfigError(f"run config: {e}") from None
  for key, value in (("round-timeout", settings.round_timeout),
                     ("setup-timeout", settings.setup_timeout),
                     ("discover-timeout", settings.discover_timeout)):
    if not value > 0:
      raise ConfigError(f"run config '{key}'={value} must be > 0 seconds")
  if settings.min_nodes < 0:
    raise ConfigError(f"run config 'min-nodes'={settings.min_nodes} must be >= 0 "
                      "(0 = every client)")
  return settings


@dataclasses.dataclass(frozen=True)
class NodeSettings:
  """The node config, typed (see the module docstring)."""

  partition_id: int
  workdir: str
  blackbox_url: str | None
  api_key_env: str | None
  overrides: str
  train_delay_seconds: float
  imports: str = ""
  worker: str = "auto"  # "on", "off" or "auto"
  worker_idle_seconds: float = 600.0


def node_settings(node_config: Mapping[str, Any]) -> NodeSettings:
  """Reads a SuperNode's ``--node-config``; ``ConfigError`` naming a missing or bad key."""
  if "partition-id" not in node_config:
    raise ConfigError("node config has no 'partition-id': start the SuperNode with "
                      "--node-config \"partition-id=<0..num_clients-1>\"")
  try:
    partition = int(node_config["partition-id"])
    delay = float(node_config.get("train-delay-seconds", 0.0))
  except (TypeError, ValueError) as e:
    raise ConfigError(f"node config: {e}") from None
  if partition < 0 or delay < 0:
    raise ConfigError(f"node config 'partition-id'={partition} and 'train-delay-seconds'="
                      f"{delay} must be >= 0")
  worker = node_config.get("worker", "auto")
  worker = {True: "on", False: "off", "true": "on", "false": "off", "auto": "auto"}.get(
      worker.lower() if isinstance(worker, str) else worker)
  if worker is None:
    raise ConfigError(f"node config 'worker'={node_config['worker']!r} must be true, false or "
                      "\"auto\"")
  try:
    idle = float(node_config.get("worker-idle-seconds", 600.0))
  except (TypeError, ValueError) as e:
    raise ConfigError(f"node config 'worker-idle-seconds': {e}") from None
  if not idle > 0:
    raise ConfigError(f"node config 'worker-idle-seconds'={idle} must be > 0")
  url = node_config.get("blackbox-url")
  key_env = node_config.get("api-key-env")
  return NodeSettings(
      partition_id=partition,
      workdir=os.path.abspath(os.path.expanduser(str(node_config.get(
          "workdir", os.path.join(DEFAULT_NODE_WORKDIR, f"partition-{partition}"))))),
      blackbox_url=None if url is None else str(url),
      api_key_env=None if key_env is None else str(key_env),
      overrides=str(node_config.get("overrides", "")), train_delay_seconds=delay,
      imports=str(node_config.get("imports", "")), worker=worker, worker_idle_seconds=idle)


def provider_section(config: ml_collections.ConfigDict) -> str:
  """The config section of the run's provider connection: ``blackbox``, or the one the
  task family declares (the instruction family's black-box LLM: ``llm``)."""
  from fedbbpt_jax.tasks import FAMILIES  # pylint: disable=import-outside-toplevel
  family = config.get("task", {}).get("family", "")
  return FAMILIES.get(family).provider if family in FAMILIES.names() else "blackbox"


def node_view(config: ml_collections.ConfigDict, node: NodeSettings) -> ml_collections.ConfigDict:
  """The run's config as this node runs it: its own provider URL and key variable (node
  config ``blackbox-url`` and ``api-key-env``, set in the family's provider section) and
  node-local overrides (``NODE_LOCAL_FIELDS``); everything else as the server sent it."""
  section = provider_section(config)
  items = [node.overrides]
  if node.blackbox_url is not None:
    items.append(f"{section}.url={node.blackbox_url}")
  if node.api_key_env is not None:
    items.append(f"{section}.api_key_env={node.api_key_env}")
  return apply_overrides(config, " ".join(items), allowed=NODE_LOCAL_FIELDS,
                         source=f"node config of partition {node.partition_id}")
