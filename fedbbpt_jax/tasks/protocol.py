"""What a task family provides: the ``Task`` protocol, the ``TaskBundle`` it builds, its registry.

A task family is a package ``tasks/<family>/`` that registers a ``TaskFamily`` under
the name ``config.task.family`` takes:

* ``check(config)``: its own config fields (values only; nothing is loaded), each
  failure a ``ConfigError`` naming the field, the value and the allowed range;
* ``build(config, options) -> TaskBundle``: dataset, black box, prompt, task, client
  data, test data, how to initialise and describe a prompt, and the black-box work
  spent before training; optionally a ``refresh`` that re-derives the task from the
  current prompt every ``refresh_every`` rounds (the image family's iterative label
  mapping).

Where the data lie (``BuildOptions.role``): a **simulation** holds every client in one
process; a deployment's **server** holds no training data (the clients' sizes come from
their nodes, the set-up from the statistics they compute, ``local_setup.py``); a
deployment's **node** holds one client's data and answers the set-up statistics for
it. A family lists the roles it builds in ``TaskFamily.roles``.

The generic layers (``train``, ``federated``) only see this protocol: they never name
a family. Users register their own family with ``register_family``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.core import Registry
from fedbbpt_jax.data.clients import ClientData
from fedbbpt_jax.tasks.local_setup import Gather, Statistic

PyTree = Any
TaskMetric = Callable[[np.ndarray, np.ndarray], float]  # (labels, predictions) -> value


@runtime_checkable
class Task(Protocol):
  """A black-box classification task a prompt is trained for.

  ``params=None`` means no prompt (zero-shot) in ``logits``.
  """

  @property
  def num_classes(self) -> int: ...

  def candidate_losses(self, candidates: PyTree, batch: dict) -> jnp.ndarray:
    """Mean loss ``[num_candidates]`` of stacked candidates on one minibatch: one call."""

  def logits(self, params: PyTree | None, x: jnp.ndarray) -> jnp.ndarray:
    """Task logits ``[B, num_classes]``."""

  def loss(self, logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Per-example loss ``[B]``."""


def task_state(task: Task) -> PyTree | None:
  """The arrays of ``task`` that a refresh changes (``task.state``), or None.

  A task that re-derives itself during training (``TaskBundle.refresh``) exposes them as
  ``state`` and rebuilds itself around new ones with ``with_state(state)``: the round
  program then takes them as an argument, so a refresh changes data, not the program
  (one compiled round per run, and members of a vmapped sweep each with their own).
  """
  return getattr(task, "state", None)


def with_task_state(task: Task, state: PyTree | None) -> Task:
  """``task`` around ``state`` (``task.with_state``); ``task`` itself when ``state`` is None."""
  return task if state is None else task.with_state(state)


def predictions(task: Task, params: PyTree | None, x: jnp.ndarray) -> jnp.ndarray:
  """The predicted class of every row of ``x``."""
  return jnp.argmax(task.logits(params, x), -1)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
  """How to build, beyond the config.

  Attributes:
    workdir: where a family may cache what it spent queries on before training (e.g.
      the image label mapping), so that a resumed run does not query again.
    wrap_blackbox: applied to the black box before anything uses it (e.g. a
      ``CountingBlackBox`` in tests).
    prepare_clients: ``(clients, num_classes) -> clients``, applied to the packed
      client data before anything uses it (the simulated label-flip attack). A family
      calls ``options.clients(...)`` right after packing its clients.
    role: ``'simulation'`` (every client's data here), ``'server'`` (no training data:
      ``client_sizes`` and ``gather`` stand for the clients) or ``'node'`` (client
      ``partition_id``'s data only; the set-up files are in ``workdir``, sent by the
      server; a file not there yet means the set-up is being gathered: build with a
      neutral placeholder, and answer ``statistics``).
    partition_id: the node's client.
    client_sizes: the server's view of every client: its training-example count.
    gather: the server's way to ask every client for a set-up statistic.
  """

  workdir: str | None = None
  wrap_blackbox: Callable[[BlackBox], BlackBox] | None = None
  prepare_clients: Callable[[ClientData, int], ClientData] | None = None
  role: str = "simulation"
  partition_id: int = -1
  client_sizes: tuple[int, ...] = ()
  gather: Gather | None = None

  def __post_init__(self):
    if self.role not in ROLES:
      raise ValueError(f"BuildOptions.role={self.role!r} is not one of {ROLES}")
    if self.role == NODE and self.partition_id < 0:
      raise ValueError("BuildOptions: a node build needs its partition_id")
    if self.role == SERVER and (self.gather is None or not self.client_sizes):
      raise ValueError("BuildOptions: a server build needs the clients' sizes and a gather")

  def wrap(self, blackbox: BlackBox) -> BlackBox:
    return blackbox if self.wrap_blackbox is None else self.wrap_blackbox(blackbox)

  def clients(self, clients: ClientData, num_classes: int) -> ClientData:
    """The family's packed ``clients`` as training will see them (``prepare_clients``)."""
    return clients if self.prepare_clients is None else self.prepare_clients(clients,
                                                                             num_classes)


SIMULATION, SERVER, NODE = "simulation", "server", "node"
ROLES = (SIMULATION, SERVER, NODE)


class TaskRefresh(NamedTuple):
  """A task re-derived from the current prompt, and the black-box work it cost.

  ``examples``/``calls`` are 0 when it was read back from the workdir (already paid
  for and metered before a resume). ``files``: the workdir files that hold it (a
  deployment ships them to its nodes, which read the refresh back with ``params=None``).
  """

  task: "Task"
  examples: int
  calls: int
  files: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TaskBundle:
  """Everything a federated run needs from a task family.

  Attributes:
    task: the ``Task``.
    blackbox: the black box the task calls (its pending errors are checked).
    clients: the clients' training data (leading client axis).
    test_x, test_y: the fixed test set.
    init_prompt: ``key -> params``, the prompt generator's initialisation.
    label_histograms: ``[clients, classes]`` training-label counts.
    test_split: one line describing the test set (for the summary).
    setup_examples: black-box examples spent before training (label mapping, verbalizers).
    setup_calls: black-box calls spent before training.
    project: map back to the feasible parameter set after every step (or None).
    task_metric: ``(name, metric(labels, predictions))`` reported beside accuracy (or None).
    describe: ``params -> dict`` of summary entries (e.g. the learned prompt as text).
    counters: ``() -> {name: count}``, work the family's own parts did in this process
      (e.g. the instruction family's generations and LLM requests), cumulative; the loop
      saves them with every checkpoint and carries them over a resume like the query
      meter, and their carried totals replace ``describe``'s entries of the same names.
    cache_state: ``() -> JSON-able``, the family's host-side caches (e.g. instructions
      generated, scores asked), saved with every checkpoint; ``load_cache_state(state)``
      adds one back on resume, so that a resumed run repeats no work already done and
      its counters equal an uninterrupted run's.
    cache_files: files the build wrote in ``options.workdir`` (copied to sweep members).
    statistics: the set-up statistics this build answers for the clients it holds
      (``local_setup.py``): a node's answers to the server's set-up requests. One set
      for every client, or (a simulation whose statistics read data ``ClientData`` does
      not hold, e.g. the text family's raw texts) one set per client, each bound to its
      client's data (``local_gather`` takes either).
    client_count: how many clients the run has when ``clients`` holds fewer (a node
      holds its own only, at index 0); 0 = ``clients``' leading axis.
    refresh_every: re-derive the task every this many rounds (0 = never).
    refresh: ``(params, round, current_task, workdir=<the build's>) -> TaskRefresh``:
      the task for rounds ``round .. round + refresh_every - 1``, derived with the
      prompt ``params`` at the start of ``round`` from the task in force, and kept in
      ``workdir``; ``params=None`` reads it back (resume) and raises
      ``FileNotFoundError`` if it was never written. The refreshed task differs from
      the built one only in its ``state`` (``task_state``): the round program takes
      that as an argument.
  """

  task: Task
  blackbox: BlackBox
  clients: ClientData
  test_x: Any
  test_y: np.ndarray
  init_prompt: Callable[[jax.Array], PyTree]
  label_histograms: np.ndarray
  test_split: str
  setup_examples: int = 0
  setup_calls: int = 0
  project: Callable[[PyTree], PyTree] | None = None
  task_metric: tuple[str, TaskMetric] | None = None
  describe: Callable[[PyTree], dict] = lambda params: {}
  counters: Callable[[], dict[str, int]] = lambda: {}
  cache_state: Callable[[], Any] = lambda: {}
  load_cache_state: Callable[[Any], None] = lambda state: None
  cache_files: tuple[str, ...] = ()
  statistics: dict[str, Statistic] | list[dict[str, Statistic]] = dataclasses.field(
      default_factory=dict)
  client_count: int = 0
  refresh_every: int = 0
  refresh: Callable[..., TaskRefresh] | None = None

  def refresh_rounds(self, rounds: int) -> list[int]:
    """The rounds (0-based) before which the task is re-derived."""
    if not self.refresh_every or self.refresh is None:
      return []
    return list(range(self.refresh_every, rounds, self.refresh_every))

  @property
  def num_clients(self) -> int:
    return self.client_count or int(self.clients.num_examples.shape[0])


class TaskFamily(NamedTuple):
  """A registered task family (see the module docstring); ``roles``: the
  ``BuildOptions.role`` values its ``build`` supports; ``provider``: the config section
  holding the provider connection its black box uses (``url``, ``api_key_env``), which
  a deployed node points at its own provider URL and key."""

  check: Callable[[Any], None]
  build: Callable[[Any, BuildOptions], TaskBundle]
  roles: tuple[str, ...] = (SIMULATION,)
  provider: str = "blackbox"


FAMILIES: Registry[TaskFamily] = Registry("task family", home="fedbbpt_jax.tasks.FAMILIES")


def register_family(name: str, check: Callable[[Any], None],
                    build: Callable[[Any, BuildOptions], TaskBundle], *,
                    roles: tuple[str, ...] = (SIMULATION,), provider: str = "blackbox",
                    overwrite: bool = False) -> None:
  """Registers a task family under ``name`` (the value of ``config.task.family``);
  ``roles``: where its build can run (``ROLES``; a deployment needs all three);
  ``provider``: its provider connection's config section (``TaskFamily``)."""
  bad = [r for r in roles if r not in ROLES]
  if bad or SIMULATION not in roles:
    raise ValueError(f"task family {name!r}: roles {roles} must include {SIMULATION!r} and "
                     f"be among {ROLES}")
  FAMILIES.register(name, TaskFamily(check, build, tuple(roles), provider), overwrite=overwrite)
