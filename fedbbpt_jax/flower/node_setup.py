"""A node's answers to the server's set-up requests (``tasks/local_setup.py``).

The server asks every node for a named set-up statistic (the image family's prediction
counts for the label mapping, its ILM re-map counts and guard, a prompt's feature sums);
the node builds its view of the experiment (its own client only, ``node.py``) and runs
the family's statistic on its own data, paying any black-box query with its own key.
Only the statistic goes back. What a statistic keeps between requests (e.g. the
outputs the ILM guard counts again) lives in the node's run directory
(``FileStore``), so it survives a ClientApp process ending between two requests.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator, MutableMapping

import numpy as np
from flwr.app import Message, MetricRecord, RecordDict

from fedbbpt_jax.core import import_plugins
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.codec import to_array_record
from fedbbpt_jax.flower.node import node_experiment, run_directory
from fedbbpt_jax.flower.settings import node_settings
from fedbbpt_jax.tasks.local_setup import CLIENT_SIZE, client_row

STORE_DIR = "setup-store"


class FileStore(MutableMapping):
  """``{name: array}`` kept as ``<name>.npy`` files in ``directory`` (written atomically)."""

  def __init__(self, directory: str):
    self.directory = directory

  def _path(self, name: str) -> str:
    if not name or "/" in name or name.startswith("."):
      raise KeyError(f"not a store name: {name!r}")
    return os.path.join(self.directory, name + ".npy")

  def __getitem__(self, name: str) -> np.ndarray:
    try:
      return np.load(self._path(name))
    except FileNotFoundError:
      raise KeyError(name) from None

  def __setitem__(self, name: str, value: Any) -> None:
    os.makedirs(self.directory, exist_ok=True)
    tmp = self._path(name) + ".tmp.npy"
    np.save(tmp, np.asarray(value))
    os.replace(tmp, self._path(name))

  def __delitem__(self, name: str) -> None:
    try:
      os.remove(self._path(name))
    except FileNotFoundError:
      raise KeyError(name) from None

  def __iter__(self) -> Iterator[str]:
    if not os.path.isdir(self.directory):
      return iter(())
    return iter(sorted(f[:-4] for f in os.listdir(self.directory)
                       if f.endswith(".npy") and not f.endswith(".tmp.npy")))

  def __len__(self) -> int:
    return len(list(iter(self)))


def client_size(client: Any, request: Any, store: Any) -> dict[str, np.ndarray]:
  """The ``client_size`` statistic every node answers: its training-example count."""
  del request, store
  return {"num_examples": np.asarray(int(client.num_examples), np.int64)}


def setup_content(content: RecordDict, node_config: Any) -> RecordDict:
  """The content of the reply to a set-up request: the statistic the request names,
  computed on this node's own client (``M.STATS``) and a ``REPORT``.

  Raises:
    KeyError: the task has no statistic of that name.
  """
  node = node_settings(node_config)
  import_plugins(node.imports)
  run = content[M.RUN]
  exp, _ = node_experiment(node, run)
  name = str(run[M.STATISTIC])
  statistics = {**exp.bundle.statistics, CLIENT_SIZE: client_size}
  if name not in statistics:
    raise KeyError(f"the server asked for set-up statistic {name!r}; task family "
                   f"{exp.config.task.family!r} answers {sorted(statistics)}")
  record = content[M.REQUEST]
  request = {k: record[k].numpy() for k in record.keys()}
  t0 = time.time()
  store = FileStore(os.path.join(run_directory(node, str(run[M.CONFIG_JSON])), STORE_DIR))
  stats = statistics[name](client_row(exp.clients, 0), request, store)
  exp.bundle.blackbox.raise_pending_error()
  report = {M.PARTITION_ID: node.partition_id, "setup-seconds": time.time() - t0}
  return RecordDict({M.STATS: to_array_record({k: np.asarray(v) for k, v in stats.items()}),
                     M.REPORT: MetricRecord(report)})


def setup_reply(message: Message, node_config: Any) -> Message:
  """The reply to a set-up request (``setup_content``)."""
  return Message(setup_content(message.content, node_config), reply_to=message)
