"""A deployment's round logic as a Flower ``Strategy``: the simulated round, split at the wire.

A simulated round is ``select -> broadcast -> run_cohort(client_update) -> [receive]
-> server_update`` (``federated.algorithms.algorithm.simulated_round``). Here:

* ``configure_train`` draws the cohort with the algorithm's own ``select`` from the
  round key (as the simulation does, so a resumed server samples what an
  uninterrupted one would) and sends each member's node the broadcast, the round
  and the run's config and set-up files;
* the nodes run ``client_update`` (``node.py``);
* ``aggregate_train`` decodes every reply against the expected upload structure,
  stacks the cohort in id order (a member whose node is missing, failed or timed
  out enters with weight 0 and a zero delta: every aggregator then ignores it, the
  dropout rule of ``federated/simulated_faults/dropout.py``), runs ``receive`` (seed
  uploads replayed) and ``server_update`` with the simulation's keys. A round nobody answered keeps
  the parameters and the server optimizer state.

The strategy holds the ``ServerState`` (parameters, server optimizer state, round);
the ``ArrayRecord`` it returns is the new global generator. With ``download='seeds'``
it also keeps every round's seed uploads and sends nodes those instead of the model
(``seed_download.py``).

Federated evaluation (``train.evaluation`` 'federated' or 'both'): ``configure_evaluate``
sends every connected node the global model; ``aggregate_evaluate`` reads the replies'
sums (``evaluation_wire.py``) into ``last_test_sums``, the clients that answered in
partition order.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedbbpt_jax.federated.algorithms.algorithm import (NO_SURVIVORS, SERVER_KEY_FOLD,
                                                        keep_state_if, payload_of, tree_bytes)
from fedbbpt_jax.federated.algorithms.server import ServerState, round_keys
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.codec import from_array_record, to_array_record
from fedbbpt_jax.flower.evaluation_wire import client_sums_of
from fedbbpt_jax.flower.seed_download import (RoundRecord, check_seed_download,
                                              history_bytes, history_record, params_check,
                                              record_of)
from fedbbpt_jax.flower.settings import config_to_json
from fedbbpt_jax.tasks.federated_evaluation import ClientTestSums, federated_report
from fedbbpt_jax.train.build import Experiment

PyTree = Any


def absent(uploads: Any, reported: jnp.ndarray) -> Any:
  """``uploads`` with every member that did not report given weight 0 and a zero delta."""
  weights = jnp.where(reported, uploads.num_examples, 0).astype(uploads.num_examples.dtype)
  uploads = uploads.replace(num_examples=weights)
  if hasattr(uploads, "delta"):
    mask = lambda a: jnp.where(reported.reshape((-1,) + (1,) * (a.ndim - 1)), a, 0)
    uploads = uploads.replace(delta=jax.tree.map(mask, uploads.delta))
  return uploads


def make_server_step(exp: Experiment) -> Callable:
  """``step(state, uploads, ids, reported) -> (state, metrics)``: the server half of a
  simulated round (same keys), with the members that did not report left out."""
  algorithm = exp.algorithm

  def step(state, uploads, ids, reported):
    k_sample, _ = round_keys(exp.root_key, state.round)
    if algorithm.receive is not None:
      uploads = algorithm.receive(algorithm.broadcast(state), uploads, exp.hparams, state.round)
    uploads = absent(uploads, reported)
    new_state, metrics = algorithm.server_update(state, uploads, ids,
                                                 jax.random.fold_in(k_sample, SERVER_KEY_FOLD))
    nobody = ~jnp.any(reported)
    new_state = keep_state_if(nobody, new_state, state)
    return new_state, {**metrics, "survivors": jnp.sum(reported).astype(jnp.int32),
                       NO_SURVIVORS: nobody}

  return jax.jit(step)


class FedBBPTStrategy(Strategy):
  """Fed-BBPT (any server algorithm without per-client state) as a Flower strategy.

  Args:
    exp: the server's experiment (algorithm, keys, hyper-parameters, config).
    state: the server state to start from (e.g. restored from a checkpoint).
    partitions: ``{partition id: node id}`` of the connected nodes (``discovery``).
    setup_files: ``{name: bytes}`` the server derived before training (sent along).
    log: where per-round notes go (missing or failed nodes).
  """

  def __init__(self, exp: Experiment, state: ServerState, partitions: dict[int, int],
               setup_files: dict[str, bytes] | None = None,
               log: Callable[[str], None] = print, message_ttl: float | None = None,
               refresh_round: int = -1, download: str = "dense"):
    if exp.algorithm.per_client_state:
      raise ValueError(f"algorithm {exp.algorithm.name!r} keeps per-client state; a Flower "
                       "deployment runs server algorithms only")
    check_seed_download(download, exp.config)
    self.state, self.partitions = state, dict(partitions)
    self.log, self.message_ttl, self.download = log, message_ttl, download
    self.records: dict[int, RoundRecord] = {}  # download='seeds': every round since start
    self.synced: dict[int, int] = {}  # partition -> round of the state its node holds
    self.config_json = config_to_json(exp.config)
    self.use_task(exp, setup_files, refresh_round)
    self.upload_like = exp.upload_structure()
    self.cohort: np.ndarray = np.zeros((0,), np.int32)
    self._messages: list[tuple[int, Message]] = []  # (partition id, message) this round
    self._answered: set[int] = set()  # partitions whose node replied (maybe an error)
    self.sent: dict[int, int] = {}  # partition id -> node id, this round
    self.last_metrics: dict[str, Any] = {}
    self.last_counters: dict[str, int] = {}
    self.last_notes: list[str] = []
    self._evaluating: list[tuple[int, Message]] = []  # (partition id, message) this time
    self.last_test_sums: ClientTestSums | None = None

  def use_task(self, exp: Experiment, setup_files: dict[str, bytes] | None,
               refresh_round: int = -1) -> None:
    """Runs the next rounds on ``exp`` (e.g. after a task refresh, ``refresh_round``
    being the round before which it was derived; -1 = none) with these set-up files."""
    self.exp, self.setup_files, self.refresh_round = exp, dict(setup_files or {}), refresh_round
    self._step = make_server_step(exp)

  # -- the round, in Flower's terms ---------------------------------------------------

  def sample(self, round_idx: int) -> np.ndarray:
    """The cohort of 0-based round ``round_idx``: the algorithm's ``select`` on the
    simulation's sampling key."""
    k_sample, _ = round_keys(self.exp.root_key, round_idx)
    ids, _ = self.exp.algorithm.select(k_sample, self.exp.clients)
    return np.asarray(ids)

  def configure_train(self, server_round: int, arrays: ArrayRecord | None,
                      config: ConfigRecord | None, grid: Grid) -> Iterable[Message]:
    """Messages for round ``server_round`` (1-based) to the cohort's nodes.

    ``arrays``/``config`` are Flower's; the global model sent is the strategy's state
    (``arrays``, if given, must be that state's broadcast).
    """
    round_idx = server_round - 1
    if int(self.state.round) != round_idx:
      raise ValueError(f"the strategy's state has completed {int(self.state.round)} rounds; "
                       f"cannot configure round {server_round}")
    self.cohort = self.sample(round_idx)
    received = self.exp.algorithm.broadcast(self.state)
    run = self.run_entries(round_idx, config)
    self.sent, self.last_notes, self._messages = {}, [], []
    self._download_bytes = 0
    messages = []
    for pid in self.cohort.tolist():
      node = self.partitions.get(pid)
      if node is None:
        self.last_notes.append(f"partition {pid}: no node connected")
        continue
      self.sent[pid] = node
      content = self.model_content(pid, round_idx, received, run)
      messages.append(Message(content, dst_node_id=node, message_type=M.TRAIN,
                              group_id=str(server_round), ttl=self.message_ttl))
      self._messages.append((pid, messages[-1]))
    return messages

  def silent(self) -> set[int]:
    """The partitions sent work in the last round whose node never replied (not even an
    error): the next round asks them again at discovery, and skips a node still silent."""
    return set(self.sent) - self._answered

  def run_entries(self, round_idx: int, config: ConfigRecord | None = None) -> dict:
    """The ``RUN`` record's entries of a message for 0-based round ``round_idx``."""
    return {M.CONFIG_JSON: self.config_json, M.ROUND: round_idx,
            M.REFRESH_ROUND: self.refresh_round,
            **{M.FILE_PREFIX + k: v for k, v in self.setup_files.items()},
            **(dict(config) if config else {})}

  def model_content(self, pid: int, round_idx: int, received: Any, run: dict) -> RecordDict:
    """What partition ``pid``'s node gets: the global model (``download='dense'``), or
    the rounds since its state (``'seeds'``), or the whole state if it has none."""
    if self.download == "dense":
      self._download_bytes += tree_bytes(received)
      return RecordDict({M.GLOBAL: to_array_record(received), M.RUN: ConfigRecord(run)})
    start = self.synced.get(pid)
    if start is not None and all(q in self.records for q in range(start, round_idx)):
      self._download_bytes += history_bytes(self.records, start, round_idx)
      return RecordDict({M.HISTORY: history_record(self.records, start, round_idx),
                         M.RUN: ConfigRecord({**run, M.STATE_ROUND: start,
                                              M.PARAMS_CHECK: params_check(self.state.params)})})
    self._download_bytes += tree_bytes(self.state)
    return RecordDict({M.STATE: to_array_record(self.state), M.RUN: ConfigRecord(run)})

  def decode_reply(self, reply: Message, asked: dict[str, int]) -> tuple[int, Any, dict] | None:
    """``(partition id, upload, report)`` of a reply, or None (logged) if unusable.

    ``asked``: ``{message id: partition id}`` of the messages this round sent.
    """
    asked_pid = asked.get(reply.metadata.reply_to_message_id)
    where = (f"partition {asked_pid} (node {self.sent[asked_pid]})" if asked_pid is not None
             else f"node {reply.metadata.src_node_id}")
    if asked_pid is not None:
      self._answered.add(asked_pid)
    if reply.has_error():
      self.last_notes.append(f"{where}: error {reply.error.code}: {reply.error.reason}")
      return None
    try:
      report = dict(reply.content[M.REPORT])
      pid = int(report[M.PARTITION_ID])
      if pid != asked_pid:
        raise ValueError(f"it answered for partition {pid}, which was not asked of it")
      upload = from_array_record(reply.content[M.UPLOAD], self.upload_like,
                                 what=f"the upload of {where}")
    except (KeyError, ValueError) as e:
      self.last_notes.append(f"{where}: reply refused: {e}")
      return None
    return pid, upload, report

  def aggregate_train(self, server_round: int, replies: Iterable[Message]
                      ) -> tuple[ArrayRecord | None, MetricRecord | None]:
    """Aggregates the cohort's replies into the new state (see the module docstring)."""
    got, self._answered = {}, set()
    asked = {message.metadata.message_id: pid for pid, message in self._messages}
    for reply in replies:
      decoded = self.decode_reply(reply, asked)
      if decoded is not None:
        got[decoded[0]] = decoded[1:]
    for pid in self.sent:
      if pid not in self._answered:
        self.last_notes.append(f"partition {pid}: no reply in time")
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), self.upload_like)
    members = [got[pid][0] if pid in got else zeros for pid in self.cohort.tolist()]
    uploads = jax.tree.map(lambda *xs: np.stack(xs), *members)
    reported = np.asarray([pid in got for pid in self.cohort.tolist()])
    round_idx = int(self.state.round)
    if self.download == "seeds":  # what a node needs to replay this round later
      self.records[round_idx] = record_of(uploads, self.cohort, reported)
      for pid in self.sent:
        if pid in got:
          self.synced[pid] = round_idx  # its node rebuilt the state of this round
        else:
          self.synced.pop(pid, None)  # unknown: the whole state next time
    self.state, metrics = self._step(self.state, uploads, jnp.asarray(self.cohort), reported)
    metrics["upload_bytes"] = sum(tree_bytes(payload_of(got[p][0])) for p in got)
    metrics["download_bytes"] = self._download_bytes
    self.last_metrics = metrics
    counters: dict[str, int] = {}
    for _, report in got.values():
      for k in ("bb_examples", "bb_calls", "candidates", "client_activations"):
        counters[k] = counters.get(k, 0) + int(report[k])
    self.last_counters = counters
    for note in self.last_notes:
      self.log(f"round {server_round}: {note}")
    scalars = {k: float(v) for k, v in metrics.items()
               if k not in ("cohort", "aggregator") and np.ndim(v) == 0}
    return to_array_record(self.exp.algorithm.model(self.state)), MetricRecord(scalars)

  def configure_evaluate(self, server_round: int, arrays: ArrayRecord | None,
                         config: ConfigRecord | None, grid: Grid) -> Iterable[Message]:
    """Messages asking every connected node to test the global model after round
    ``server_round`` (1-based) on its local test split (``node_evaluation.py``).

    ``arrays``/``config`` are Flower's; the model sent is the strategy's state's
    (``algorithm.model``), dense whatever the run's ``download``.
    """
    model = to_array_record(self.exp.algorithm.model(self.state))
    run = ConfigRecord(self.run_entries(server_round - 1, config))
    self._evaluating = [
        (pid, Message(RecordDict({M.GLOBAL: model, M.RUN: run}), dst_node_id=node,
                      message_type=M.EVALUATE, group_id=f"evaluate-{server_round}",
                      ttl=self.message_ttl))
        for pid, node in sorted(self.partitions.items())]
    return [message for _, message in self._evaluating]

  def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                         ) -> MetricRecord | None:
    """Reads the nodes' sums into ``last_test_sums``; returns the pooled ``fed_test_*``
    scalars. A node that failed, answered for another partition, sent counts that do
    not fit the task, or did not answer is left out, with a logged line."""
    num_classes = int(self.exp.task.num_classes)
    asked = {message.metadata.message_id: pid for pid, message in self._evaluating}
    got: dict[int, ClientTestSums] = {}
    answered, notes = set(), []
    for reply in replies:
      pid = asked.get(reply.metadata.reply_to_message_id)
      answered.add(pid)
      where = (f"partition {pid}" if pid is not None
               else f"node {reply.metadata.src_node_id}")
      if reply.has_error():
        notes.append(f"{where}: error {reply.error.code}: {reply.error.reason}")
        continue
      try:
        sums = client_sums_of(reply.content[M.TEST_SUMS], num_classes)
        if int(sums.partition_ids[0]) != pid:
          raise ValueError(f"it answered for partition {int(sums.partition_ids[0])}, which "
                           "was not asked of it")
      except (KeyError, ValueError) as e:
        notes.append(f"{where}: test sums refused: {e}")
        continue
      got[pid] = sums
    notes += [f"partition {pid}: no test sums in time"
              for pid in sorted(set(asked.values()) - answered)]
    for note in notes:
      self.log(f"round {server_round} evaluation: {note}")
    self.last_test_sums = ClientTestSums.concatenate([got[p] for p in sorted(got)],
                                                     num_classes)._replace(
                                                         asked=len(self._evaluating))
    return MetricRecord({k: float(v) for k, v in federated_report(self.last_test_sums).items()
                         if np.ndim(v) == 0})

  def summary(self) -> None:
    c = self.exp.config
    self.log(f"{type(self).__name__}: algorithm {self.exp.algorithm.name}, cohort "
             f"{self.exp.cohort_size} of {self.exp.num_clients}, aggregator "
             f"{c.server.get('aggregator', 'weighted_mean')}, upload "
             f"{c.client.get('upload', 'dense')}, {len(self.partitions)} partitions connected")
