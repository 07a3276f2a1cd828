"""A deployed client's work: build its view of the experiment, run ``client_update``.

The node's view holds its own client only (``BuildOptions.role='node'``): the set-up
comes as the files the server derived from every node's statistics (``node_setup.py``).

The node runs the very ``client_update`` a simulated round maps over the cohort, with
the very key a simulation gives client ``partition-id`` in that round (``round_keys``
then ``client_keys``), on its own partition, against the black box its node config
names. Its reply is the upload as the simulation would produce it, so a deployment
reproduces a simulation with the same config and seed.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

from fedbbpt_jax.core import ConfigError, import_plugins
from fedbbpt_jax.federated.algorithms.algorithm import RoundCost
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.codec import from_array_record, to_array_record
from fedbbpt_jax.flower.seed_download import (CHECK_RTOL, discard_state, load_state,
                                              params_check, replay_rounds, save_state)
from fedbbpt_jax.flower.strategy import make_server_step
from fedbbpt_jax.flower.settings import (NodeSettings, config_from_json, node_settings,
                                         node_view)
from fedbbpt_jax.train.build import Experiment, build_experiment, with_task
from fedbbpt_jax.tasks.protocol import NODE
from fedbbpt_jax.train.config_check import validate_config


def run_directory(node: NodeSettings, config_json: str) -> str:
  """The node's directory for one experiment config (its set-up files live there)."""
  digest = hashlib.sha256(config_json.encode()).hexdigest()[:16]
  return os.path.join(node.workdir, f"run-{digest}")


def plain_file_name(name: str) -> bool:
  """Whether ``name`` names a file inside a directory: not empty, not '.' or '..', no
  path separator, no NUL."""
  return (name not in ("", ".", "..") and "\x00" not in name
          and os.sep not in name and (os.altsep is None or os.altsep not in name))


def write_setup_files(directory: str, run: ConfigRecord) -> None:
  """Writes the set-up files the server sent (``file:<name>`` entries) into ``directory``.

  Raises:
    ValueError: a name is not a plain file name (e.g. '../x', '/etc/passwd', 'a/b');
      nothing is written then.
  """
  files = {key.removeprefix(M.FILE_PREFIX): value for key, value in run.items()
           if key.startswith(M.FILE_PREFIX)}
  bad = sorted(name for name in files if not plain_file_name(name))
  if bad:
    raise ValueError(f"the server sent set-up files whose names are not plain file names: "
                     f"{bad}; a node writes set-up files only inside its run directory "
                     f"{directory}; nothing was written")
  os.makedirs(directory, exist_ok=True)
  for name, value in files.items():
    with open(os.path.join(directory, name), "wb") as f:
      f.write(value)


# Experiments this process built, by what they were built from: a SuperNode starts a fresh
# process per message, but the node's worker (``worker.py``), a long-lived ClientApp
# process and the in-process tests train many rounds on the same one. Keeps the last few;
# the lock makes concurrent requests (the worker's threads) build an experiment once.
_BUILT: dict[tuple, tuple[Experiment, Callable]] = {}
_KEEP = 4
_BUILD_LOCK = threading.Lock()
_BUILDS = [0]  # experiments this process has built (``builds``)


def builds() -> int:
  """How many experiments this process has built (cache misses of ``node_experiment``)."""
  return _BUILDS[0]


def node_experiment(node: NodeSettings, run: ConfigRecord) -> tuple[Experiment, Callable]:
  """The experiment as this node runs it (its config view, the server's set-up files)
  and its jitted ``client_update``."""
  files = tuple(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in run.items()
                       if k.startswith(M.FILE_PREFIX)))
  key = (str(run[M.CONFIG_JSON]), node, files, int(run.get(M.REFRESH_ROUND, -1)))
  with _BUILD_LOCK:
    if key not in _BUILT:
      while len(_BUILT) >= _KEEP:
        _BUILT.pop(next(iter(_BUILT)))
      exp = build_node_experiment(node, run)
      _BUILT[key] = (exp, jax.jit(exp.algorithm.client_update))
      _BUILDS[0] += 1
    return _BUILT[key]


def build_node_experiment(node: NodeSettings, run: ConfigRecord) -> Experiment:
  """Builds the experiment of ``node_experiment`` (no cache)."""
  config_json = str(run[M.CONFIG_JSON])
  config = node_view(config_from_json(config_json), node)
  validate_config(config)
  num_clients = int(config.data.num_clients)
  if node.partition_id >= num_clients:
    raise ConfigError(f"node config 'partition-id'={node.partition_id} is not a client of "
                      f"this run: config.data.num_clients={num_clients}")
  directory = run_directory(node, config_json)
  write_setup_files(directory, run)
  exp = build_experiment(config, workdir=directory, role=NODE, partition_id=node.partition_id)
  refresh_round = int(run.get(M.REFRESH_ROUND, -1))
  if refresh_round >= 0:  # the task the server re-derived before that round (read back)
    exp = with_task(exp, exp.bundle.refresh(None, refresh_round, None).task)
  return exp


def activation_counters(exp: Experiment) -> dict[str, int]:
  """The query-meter increments of one client's activation in one round."""
  cost = exp.round_cost
  return RoundCost(1, cost.candidates_per_activation, cost.batch_size).counters()


def global_model(content: RecordDict, exp: Experiment, directory: str) -> Any:
  """The broadcast this round trains from: sent as it is (``GLOBAL``), or rebuilt from the
  whole server state (``STATE``) or from the state this node kept and the recorded
  rounds since (``HISTORY``, ``seed_download.py``); a rebuilt state is kept for next time.

  Raises:
    RuntimeError: the kept state is not of the round the history starts from, or the
      replayed parameters differ from the server's checksum (the kept state is then
      deleted; the server sends the whole state next time).
  """
  run = content[M.RUN]
  init = exp.algorithm.init(exp.init_params)
  if M.GLOBAL in content:
    return from_array_record(content[M.GLOBAL], exp.algorithm.broadcast(init),
                             what="the global model sent by the server")
  if M.STATE in content:
    state = from_array_record(content[M.STATE], init, what="the server state sent")
  else:
    start, stop = int(run[M.STATE_ROUND]), int(run[M.ROUND])
    state = load_state(directory, init)
    held = None if state is None else int(state.round)
    if held != start:
      raise RuntimeError(f"this node holds the server state of round {held}, but the history "
                         f"sent starts at round {start}")
    state = replay_rounds(make_server_step(exp), state, content[M.HISTORY], start, stop,
                          exp.upload_structure())
    want, got = float(run[M.PARAMS_CHECK]), params_check(state.params)
    if not abs(got - want) <= CHECK_RTOL * abs(want):
      kept = discard_state(directory)
      raise RuntimeError(f"the replayed rounds {start + 1}..{stop} give parameters with "
                         f"checksum {got!r}, the server's is {want!r}; deleted the kept "
                         f"state {kept} (the server sends the whole state next time)")
  save_state(directory, state)
  return exp.algorithm.broadcast(state)


def train_reply(message: Message, node_config: Any) -> Message:
  """Runs this node's ``client_update`` for the round the message names; the reply."""
  return Message(train_content(message.content, node_config), reply_to=message)


def train_content(content: RecordDict, node_config: Any) -> RecordDict:
  """The content of ``train_reply``'s reply to a train message holding ``content`` (what
  the node's worker computes for a ClientApp process, ``worker.py``)."""
  node = node_settings(node_config)
  import_plugins(node.imports)  # this node's own plugins (its config's, not the server's)
  run = content[M.RUN]
  exp, client_update = node_experiment(node, run)
  round_idx = int(run[M.ROUND])
  if node.train_delay_seconds:
    time.sleep(node.train_delay_seconds)
  t0 = time.time()
  received = global_model(content, exp, run_directory(node, str(run[M.CONFIG_JSON])))
  own = jax.tree.map(lambda a: a[0], exp.clients)  # the node holds its own client only
  _, k_clients = round_keys(exp.root_key, round_idx)
  key = client_keys(k_clients, jnp.asarray([node.partition_id]))[0]
  upload = client_update(received, own, key, exp.hparams, jnp.asarray(round_idx, jnp.int32))
  jax.block_until_ready(upload)
  exp.bundle.blackbox.raise_pending_error()
  report = {M.PARTITION_ID: node.partition_id, "num-examples": int(upload.num_examples),
            "train-seconds": time.time() - t0, **activation_counters(exp)}
  return RecordDict({M.UPLOAD: to_array_record(upload), M.REPORT: MetricRecord(report)})

