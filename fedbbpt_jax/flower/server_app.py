"""The Flower ``ServerApp`` of a deployment (``fedbbpt_jax.flower.server_app:app``).

``run_deployment`` drives a run through the library's one driver (``train.driver``), as
``train.run`` drives a simulation, with ``GridRounds`` executing the rounds: the same
records in the same workdir (``config.json``, ``metrics.jsonl``, checkpoints,
``baselines.json``, ``summary.json``, plot): it discovers which node holds which
partition, builds the experiment **without any training data** (the clients' sizes
come from their nodes; the task's set-up, e.g. the label mapping, is derived from the
statistics every node computes on its own data, ``setup_gather.py``, and its files go
to the nodes), restores the last complete round if the
workdir has one, then for every round sends the cohort its work through
``FedBBPTStrategy``, aggregates what came back within ``round-timeout``, evaluates on
its test set (and, with ``train.evaluation`` 'federated' or 'both', asks every connected
node to test the global model on its local test split and adds their sums) and
checkpoints. Rerunning ``flwr run`` with the same ``workdir`` resumes.
The ServerApp looks for replies every ``POLL_SECONDS`` (``PromptGrid``), so a round
ends as soon as its last reply is in.

A task that re-derives itself during training (the image family's iterative label
mapping, ``task.remap_every``) is refreshed by the server before the due rounds, as in
``train.run``, from the nodes' statistics; the files of the refresh in force go to the
nodes with every message. A task family that cannot build without every client's data
(``TaskFamily.roles``) is refused with an error naming ``task.family``.

What a deployment refuses, at load time: algorithms with per-client state (DFedSAM,
local-only) and simulated faults (``config.attack``, ``config.server.dropout``: real
nodes fail for real). It skips, with a logged line, the local-only baseline (it needs
every client's data at the server).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import ml_collections
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedbbpt_jax.core import ConfigError, import_plugins
from fedbbpt_jax.federated import refuse_host_server, refuse_poisson
from fedbbpt_jax.federated.simulated_faults.faults import fault_options
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.seed_download import check_seed_download
from fedbbpt_jax.flower.settings import RunSettings, config_to_json, load_config, run_settings
from fedbbpt_jax.flower.setup_gather import DeploymentGather, client_sizes
from fedbbpt_jax.flower.strategy import FedBBPTStrategy
from fedbbpt_jax.tasks.federated_evaluation import ClientTestSums
from fedbbpt_jax.tasks.local_setup import CLIENT_SIZE
from fedbbpt_jax.tasks.protocol import SERVER
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.driver import RoundExecutor, RoundOutcome, drive
from fedbbpt_jax.train.task_schedule import TaskSchedule

app = ServerApp()
POLL_SECONDS = 0.5  # how often the ServerApp asks the SuperLink for the replies of a send
DISCOVERY_POLL_SECONDS = 0.25  # how often discovery looks for answers and new nodes
# How long discovery waits for the other nodes asked once enough partitions are known:
# a node killed without a goodbye stays listed until its heartbeat expires (about 60 s).
DISCOVERY_GRACE_SECONDS = 5.0


class PromptGrid:
  """``grid`` with a ``send_and_receive`` that asks for replies every ``poll_seconds``.

  Flower's own ``send_and_receive`` sleeps 3 s between pulls, so every discovery and
  every round ended on average 1.5 s (at worst 3 s) after its last reply came in. Push,
  pull and the reply collection are Flower's; everything else is delegated to ``grid``.
  """

  def __init__(self, grid: Grid, poll_seconds: float = POLL_SECONDS):
    if not poll_seconds > 0:
      raise ValueError(f"poll_seconds={poll_seconds} must be > 0")
    self.grid, self.poll_seconds = grid, poll_seconds

  def __getattr__(self, name: str) -> Any:
    return getattr(self.grid, name)

  def send_and_receive(self, messages: Iterable[Message], *,
                       timeout: float | None = None) -> list[Message]:
    """Pushes ``messages``; returns their replies once all came or ``timeout`` seconds
    passed (None: no limit, as Flower's)."""
    waiting = {i for i in self.grid.push_messages(messages) if i}
    deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
    replies: list[Message] = []
    while True:
      pulled = list(self.grid.pull_messages(waiting))
      replies.extend(pulled)
      waiting -= {m.metadata.reply_to_message_id for m in pulled}
      left = deadline - time.monotonic()
      if not waiting or left <= 0:
        return replies
      time.sleep(min(self.poll_seconds, left))


def check_deployable(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the field a Flower deployment cannot run with."""
  refuse_host_server(config, "a deployment's jitted server step")
  refuse_poisson(config, "a deployment")
  opts = fault_options(config)
  if opts.kind != "none":
    raise ConfigError(f"config.attack.kind={opts.kind!r}: simulated attacks do not run in a "
                      "deployment; set config.attack.kind='none'")
  if opts.dropout:
    raise ConfigError(f"config.server.dropout={opts.dropout}: simulated dropouts do not run "
                      "in a deployment (nodes that do not answer within 'round-timeout' are "
                      "the dropouts); set config.server.dropout=0")


def discover(grid: Grid, num_clients: int, known: dict[int, int], wait_for: int,
             timeout: float, log: Callable[[str], None] = print,
             grace: float = DISCOVERY_GRACE_SECONDS,
             unanswered: dict[str, int] | None = None) -> dict[int, int]:
  """``{partition id: node id}`` of the connected nodes, asking only nodes not in
  ``known`` (a node restarted under a new id is asked again; a node gone is dropped).

  Returns once every node asked has answered, or ``grace`` seconds after ``wait_for``
  partitions became known (a node that is listed but dead is not waited for), or after
  ``timeout`` seconds.

  ``unanswered`` (message id -> node; updated in place): the questions of earlier
  discoveries no answer has come to yet. Their nodes are not asked again nor waited for
  (a node listed but dead costs the grace once, not every round); an answer that comes
  late still counts.
  """
  partitions = dict(known)
  deadline = time.monotonic() + timeout
  enough_at = 0.0  # when wait_for partitions were first known
  earlier = {} if unanswered is None else unanswered
  pending: dict[str, int] = {}  # message id -> node asked here, no answer yet
  while True:
    connected = set(grid.get_node_ids())
    partitions = {p: n for p, n in partitions.items() if n in connected}
    for message_id in [m for m, n in earlier.items() if n not in connected]:
      del earlier[message_id]  # a node gone: its question is void
    waiting = set(pending.values()) | set(earlier.values())
    new = sorted(connected - set(partitions.values()) - waiting)
    if new:
      asked = [Message(RecordDict(), dst_node_id=n, message_type=M.QUERY, group_id="discovery")
               for n in new]
      pending.update(zip(grid.push_messages(asked), new))
    outstanding = [*pending, *earlier]
    for reply in grid.pull_messages(outstanding) if outstanding else ():
      pending.pop(reply.metadata.reply_to_message_id, None)
      earlier.pop(reply.metadata.reply_to_message_id, None)
      if reply.has_error():
        log(f"discovery: node {reply.metadata.src_node_id}: {reply.error.reason}")
        continue
      pid = int(reply.content[M.NODE][M.PARTITION_ID])
      if not 0 <= pid < num_clients:
        log(f"discovery: node {reply.metadata.src_node_id} holds partition-id={pid}, not a "
            f"client of this run (config.data.num_clients={num_clients}); ignored")
        continue
      if pid in partitions and partitions[pid] != reply.metadata.src_node_id:
        log(f"discovery: partition {pid} now on node {reply.metadata.src_node_id} (was "
            f"node {partitions[pid]})")
      partitions[pid] = reply.metadata.src_node_id
    now = time.monotonic()
    if len(partitions) >= wait_for:
      if not pending:
        break
      if not enough_at:
        enough_at, deadline = now, min(deadline, now + grace)
    if now >= deadline:
      break
    time.sleep(DISCOVERY_POLL_SECONDS)
  earlier.update(pending)
  return partitions


def setup_files(exp: Any, workdir: str, tasks: TaskSchedule | None = None) -> dict[str, bytes]:
  """The set-up files in the server's workdir that every node needs: what the build wrote
  (e.g. the label mapping) and the files of the task refresh in force (``tasks``)."""
  files = {}
  names = list(exp.bundle.cache_files)
  if tasks is not None and tasks.in_force is not None:
    names += list(tasks.in_force.files)
  for name in names:
    with open(os.path.join(workdir, name), "rb") as f:
      files[name] = f.read()
  return files


class GridRounds(RoundExecutor):
  """A deployment's rounds: each round's cohort gets its work over the Flower grid
  (``FedBBPTStrategy``); what came back within ``round-timeout`` is aggregated."""

  def __init__(self, grid: Grid, settings: RunSettings):
    self.grid, self.settings = grid, settings
    self.strategy: FedBBPTStrategy | None = None
    self.unanswered: dict[str, int] = {}  # discovery questions still without an answer

  def build(self, config: ml_collections.ConfigDict, workdir: str,
            wrap_blackbox: Any, log: Callable[[str], None]) -> Any:
    """Finds which node holds which partition (waiting for ``min-nodes``), asks every
    node its training-example count, and builds the experiment without training data:
    the task's set-up from the statistics the nodes compute on their own data
    (``setup_gather.py``)."""
    settings, num_clients = self.settings, int(config.data.num_clients)
    self.workdir, self.log, self.num_clients = workdir, log, num_clients
    wait_for = settings.min_nodes or num_clients
    self.partitions = discover(self.grid, num_clients, {}, wait_for, settings.discover_timeout,
                               log, unanswered=self.unanswered)
    if len(self.partitions) < wait_for:
      raise RuntimeError(
          f"only partitions {sorted(self.partitions)} of {num_clients} connected within "
          f"discover-timeout={settings.discover_timeout:g} s (min-nodes={wait_for}); "
          "a rerun with the same workdir resumes after the last complete round")
    log("nodes: " + ", ".join(f"partition {p} -> node {n}"
                              for p, n in sorted(self.partitions.items())))
    self.config_json = config_to_json(config)
    self.gather = DeploymentGather(self.grid, self.partitions, self.setup_entries,
                                   settings.setup_timeout, log)
    sizes = client_sizes(self.gather.by_partition(CLIENT_SIZE, {}), num_clients)
    return build_experiment(config, workdir=workdir, wrap_blackbox=wrap_blackbox,
                            role=SERVER, client_sizes=sizes, gather=self.gather)

  def setup_entries(self) -> dict:
    """The ``RUN`` entries of a set-up request: the config, and once training has
    started, the round's entries with the set-up files in force."""
    if self.strategy is None:
      return {M.CONFIG_JSON: self.config_json, M.ROUND: -1, M.REFRESH_ROUND: -1}
    return self.strategy.run_entries(int(self.strategy.state.round))

  def check(self, configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str]
            ) -> None:
    check_deployable(configs[0])
    check_seed_download(self.settings.download, configs[0])

  def start(self, exp: Any, exps: list[Any], configs: Sequence[ml_collections.ConfigDict],
            workdirs: Sequence[str], states: list[Any], start_round: int,
            schedules: list[TaskSchedule], log: Callable[[str], None]) -> None:
    """The strategy starts on the task in force (a resumed run's last refresh), with the
    nodes ``build`` found."""
    exp, settings = exps[0], self.settings
    self.strategy = FedBBPTStrategy(exp, states[0], self.partitions,
                                    setup_files(exp, self.workdir, schedules[0]), log,
                                    message_ttl=settings.round_timeout + 60.0,
                                    refresh_round=schedules[0].in_force_round,
                                    download=settings.download)
    self.strategy.summary()

  def state(self, i: int) -> Any:
    return self.strategy.state

  def use_task(self, i: int, exp: Any, schedule: TaskSchedule) -> None:
    """The nodes get the refreshed task's files (e.g. the new label mapping) with every
    message from now on."""
    self.strategy.use_task(exp, setup_files(exp, self.workdir, schedule),
                           schedule.in_force_round)

  def round(self, r: int, exps: list[Any]) -> list[RoundOutcome]:
    strategy = self.strategy
    known = {p: n for p, n in strategy.partitions.items() if p not in strategy.silent()}
    strategy.partitions = discover(self.grid, self.num_clients, known, 0, 5.0, self.log,
                                   unanswered=self.unanswered)
    self.gather.partitions = strategy.partitions  # (a task refresh asks these nodes)
    replies = self.grid.send_and_receive(strategy.configure_train(r + 1, None, None, self.grid),
                                         timeout=self.settings.round_timeout)
    strategy.aggregate_train(r + 1, replies)
    m = strategy.last_metrics
    jax.block_until_ready(m["survivors"])
    return [RoundOutcome(strategy.state, m, strategy.last_counters,
                         {"nodes_missing": len(strategy.cohort) - int(m["survivors"])})]

  def evaluate_clients(self, r: int, exps: list[Any], members: list[int]
                       ) -> dict[int, ClientTestSums]:
    """Every connected node tests the global model on its local test split; the sums of
    those that answered within ``round-timeout``."""
    strategy = self.strategy
    replies = self.grid.send_and_receive(strategy.configure_evaluate(r + 1, None, None,
                                                                     self.grid),
                                         timeout=self.settings.round_timeout)
    strategy.aggregate_evaluate(r + 1, replies)
    return {i: strategy.last_test_sums for i in members}

  def local_only(self, exp: Any, evaluator: Any, todo: list[int], rounds: int,
                 log: Callable[[str], None]) -> None:
    log("local-only baseline skipped: in a deployment it would need every client's data at "
        "the server (config.baselines.local_only is ignored)")
    return None


def run_deployment(grid: Grid, config: ml_collections.ConfigDict, settings: RunSettings,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs (or resumes) ``config`` over the nodes of ``grid``; returns the summary."""
  return drive([config], [settings.workdir], GridRounds(grid, settings), log)[0]


@app.main()
def main(grid: Grid, context: Context) -> None:
  settings = run_settings(context.run_config)
  import_plugins(settings.imports)  # the server's own plugins, before its config is read
  config = load_config(settings.config, settings.overrides)
  summary = run_deployment(PromptGrid(grid), config, settings,
                           log=lambda s: print(s, flush=True))
  accuracy = summary["final_accuracy"]  # None when only the clients test (federated)
  where = ""
  if accuracy is None:
    accuracy, where = summary.get("final_fed_test_accuracy"), " (clients' test splits)"
  accuracy_text = "n/a" if accuracy is None else f"{100 * accuracy:.2f}%"
  print(f"final accuracy {accuracy_text}{where} after {summary['rounds']} "
        f"rounds; records in {settings.workdir}", flush=True)
