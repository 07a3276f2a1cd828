"""The server's ``Gather`` in a deployment: a set-up statistic asked of every node.

``tasks/local_setup.py`` defines the contract; here each request becomes a
``query.setup`` message to every connected node (``messages.py``) carrying the run's
config and set-up files in force (``run_entries``) with the request's arrays; the
nodes answer with their statistic (``node_setup.py``). The answers come back in
partition order. A node that fails (its error logged) or does not answer within the
timeout is left out of the statistic, with a logged line: the set-up is then that of
the clients that answered, as in a simulation without those clients. No answer at all
raises, with the nodes' errors.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.codec import to_array_record
from fedbbpt_jax.tasks.local_setup import Request, Stats


class DeploymentGather:
  """``gather(name, request) -> [stats]`` over the nodes of ``partitions``.

  Args:
    grid: the ServerApp's grid.
    partitions: ``{partition id: node id}`` (read at every request: the caller may
      update it).
    run_entries: ``() -> {name: value}``, the ``RUN`` entries a node builds its
      experiment from (the config, and once the set-up is derived, its files).
    timeout: seconds to wait for the answers of one request.
    log: where the notes go (nodes left out).
  """

  def __init__(self, grid: Grid, partitions: dict[int, int], run_entries: Callable[[], dict],
               timeout: float, log: Callable[[str], None] = print):
    self.grid, self.partitions, self.run_entries = grid, partitions, run_entries
    self.timeout, self.log = timeout, log
    self.requests = 0  # set-up requests sent (one per node and statistic)

  def __call__(self, name: str, request: Request) -> list[Stats]:
    got = self.by_partition(name, request)
    return [got[pid] for pid in sorted(got)]

  def by_partition(self, name: str, request: Request) -> dict[int, Stats]:
    """The answers to one request, by partition id."""
    arrays = to_array_record({k: np.asarray(v) for k, v in request.items()})
    run = ConfigRecord({**self.run_entries(), M.STATISTIC: name})
    messages = []
    for pid, node in sorted(self.partitions.items()):
      message = Message(RecordDict({M.RUN: run, M.REQUEST: arrays}), dst_node_id=node,
                        message_type=M.SETUP, group_id=f"setup-{name}",
                        ttl=self.timeout + 60.0)
      messages.append(message)
    replies = self.grid.send_and_receive(messages, timeout=self.timeout)
    sent = {m.metadata.message_id: pid for m, pid in zip(messages, sorted(self.partitions))}
    self.requests += len(messages)
    got: dict[int, Stats] = {}
    failed = []
    for reply in replies:
      pid = sent.get(reply.metadata.reply_to_message_id)
      if pid is None:
        continue
      if reply.has_error():
        failed.append(f"partition {pid}: {reply.error.reason}")
        continue
      record = reply.content[M.STATS]
      got[pid] = {k: record[k].numpy() for k in record.keys()}
    for note in failed:
      self.log(f"set-up statistic {name!r}: {note}")
    if not got:
      raise RuntimeError(f"set-up statistic {name!r}: no node answered within "
                         f"{self.timeout:g} s" + "".join(f"; {note}" for note in failed))
    missing = sorted(set(self.partitions) - set(got))
    if missing:
      self.log(f"set-up statistic {name!r}: partitions {missing} left out (no answer within "
               f"{self.timeout:g} s, or an error); the set-up is that of partitions "
               f"{sorted(got)}")
    return got


def client_sizes(stats_by_partition: dict[int, Stats], num_clients: int) -> tuple[int, ...]:
  """Every client's training-example count (0 for a partition without an answer)."""
  return tuple(int(stats_by_partition[p]["num_examples"]) if p in stats_by_partition else 0
               for p in range(num_clients))
