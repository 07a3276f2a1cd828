"""The one round loop: every run of the library goes through ``drive``.

``drive(configs, workdirs, executor)`` runs (or resumes) one experiment per workdir, all
built from ``configs[0]`` (the members of a vmapped sweep may differ in their seed and
step sizes, nothing that changes the program). What executes a round is the
``executor``'s; everything around it is the driver's, the same for every kind of run:

    validate, build, evaluator (prepare)       zero-shot baseline (once, copied)
    per member: records, resume, task schedule
    every round: may it run (DP target)? -> task refresh (the member's own prompt)
                 -> budget check -> executor.round -> black-box error?
                 -> executor.evaluate_clients (train.evaluation, when due) -> record
    local-only baseline (the executor trains it, or cannot)  -> summary, plot

The executors:

* ``simulation.SimulatedRounds``: one jitted simulated round (``train.run``);
* ``vmapped_sweep.VmappedRounds``: S members in one ``jit(vmap(round))``
  (``train.run_vmapped``);
* ``flower.server_app.GridRounds``: a round sent over a Flower grid to real nodes
  (``flower.server_app.run_deployment``).

Only ``RunRecords`` (called from here) writes ``metrics.jsonl`` rows and
``summary.json``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.federated import small_client_warning
from fedbbpt_jax.parallel.devices import ensure_cpu_devices
from fedbbpt_jax.prompts import num_params
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.tasks.federated_evaluation import ClientTestSums
from fedbbpt_jax.train import baselines as B
from fedbbpt_jax.train import records
from fedbbpt_jax.train.build import Experiment, build_experiment, raise_blackbox_error
from fedbbpt_jax.train.client_tests import SimulatedClientTests
from fedbbpt_jax.train.config_check import validate_config
from fedbbpt_jax.train.run_records import RunRecords, last_saved
from fedbbpt_jax.train.task_schedule import TaskSchedule

Log = Callable[[str], None]


@dataclasses.dataclass
class RoundOutcome:
  """What one round left for one member: its new state, the round's metrics (at least
  ``train_loss`` and ``cohort``), the query-meter increments when they were measured
  (None: the algorithm's ``RoundCost``), and extra row entries."""

  state: Any
  metrics: dict[str, Any]
  counters: dict[str, int] | None = None
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class RoundExecutor:
  """What executes the rounds of a ``drive``; the driver owns everything else.

  The life of an executor: ``check`` (before anything is written), ``start`` (after the
  build, the zero-shot baseline and the resume), then ``round`` once per round, with
  ``use_task`` before a round whose task a member refreshed and ``evaluate_clients``
  after a round the clients test (``train.evaluation``); ``local_only`` at the end.
  """

  _client_tests: SimulatedClientTests | None = None

  def check(self, configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str]
            ) -> None:
    """Refuses what this executor cannot run, naming the field (nothing written yet)."""

  def build(self, config: ml_collections.ConfigDict, workdir: str,
            wrap_blackbox: Callable[[BlackBox], BlackBox] | None, log: Log) -> Experiment:
    """The experiment of ``config`` (after ``check``): every client's data in this
    process; a deployment's server builds without them (``flower/server_app.py``)."""
    del log
    return build_experiment(config, workdir=workdir, wrap_blackbox=wrap_blackbox)

  def start(self, exp: Experiment, exps: list[Experiment],
            configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
            states: list[Any], start_round: int, schedules: list[TaskSchedule], log: Log
            ) -> None:
    """Takes the members' states after ``start_round`` (restored, or the fresh
    ``exp.algorithm.init(exp.init_params)`` when ``start_round`` is 0); ``exp`` is the
    experiment as built, ``exps[i]`` member ``i``'s in force (its last task refresh)."""
    raise NotImplementedError

  def state(self, i: int) -> Any:
    """Member ``i``'s current server state."""
    raise NotImplementedError

  def use_task(self, i: int, exp: Experiment, schedule: TaskSchedule) -> None:
    """Member ``i``'s task was refreshed (``schedule.in_force``) before the next round."""

  def round(self, r: int, exps: list[Experiment]) -> list[RoundOutcome]:
    """Runs round ``r + 1`` of every member (``exps[i]``: member ``i``'s task in force)."""
    raise NotImplementedError

  def local_only(self, exp: Experiment, evaluator: Evaluator, todo: list[int], rounds: int,
                 log: Log) -> dict[int, dict[str, Any]] | None:
    """The local-only baseline fields of the members ``todo`` (None: it cannot be run
    here, logged)."""
    raise NotImplementedError

  def evaluate_clients(self, r: int, exps: list[Experiment], members: list[int]
                       ) -> dict[int, ClientTestSums]:
    """The federated evaluation after round ``r + 1`` of the members ``members``: every
    client's sums for the member's global model (``exp.algorithm.model(state)``) on its
    local test split. By default the simulated clients' (``SimulatedClientTests``, all
    on this host); a deployment asks its nodes."""
    del r
    if self._client_tests is None:
      self._client_tests = SimulatedClientTests(exps[0])
    return {i: self._client_tests(exps[i], self.state(i)) for i in members}

  def describe_member(self, i: int) -> str:
    """How an error names member ``i`` (empty for a single run)."""
    del i
    return ""


def client_sizes_text(sizes, listed: int = 12) -> str:
  """The clients' example counts for the log: all of them for a few clients, else their
  total, min, median and max (a cross-device run has 1,000)."""
  sizes = np.asarray(sizes)
  if sizes.size <= listed:
    return str(sizes.tolist())
  return (f"{int(sizes.sum()):,} in all, min {int(sizes.min())}, "
          f"median {float(np.median(sizes)):g}, max {int(sizes.max())}")


def prepare(config: ml_collections.ConfigDict, workdirs: list[str],
            configs: list[ml_collections.ConfigDict] | None = None,
            log: Log = print,
            wrap_blackbox: Callable[[BlackBox], BlackBox] | None = None,
            build: Callable[..., Experiment] | None = None
            ) -> tuple[Experiment, Evaluator]:
  """Validates, creates the workdirs (checking their config.json), builds, logs.

  ``configs[i]`` is the config recorded in ``workdirs[i]`` (default: ``config``
  for all); the experiment is built from ``config`` by ``build(config, workdir,
  wrap_blackbox, log)`` (default: ``RoundExecutor.build``, every client here);
  ``wrap_blackbox`` wraps its black box (see ``build_experiment``).
  """
  configs = configs or [config] * len(workdirs)
  for c in configs:
    validate_config(c)
  ensure_cpu_devices(config.parallel.get("cpu_devices", 0))
  for workdir, c in zip(workdirs, configs):
    os.makedirs(workdir, exist_ok=True)
    records.check_or_write_config(workdir, c)
  exp = (build or RoundExecutor().build)(config, workdirs[0], wrap_blackbox, log)
  raise_blackbox_error(exp)  # the setup's queries (e.g. a label mapping)
  for name in exp.bundle.cache_files:  # every member of a sweep keeps its own copy
    for workdir in workdirs[1:]:
      if not os.path.exists(os.path.join(workdir, name)):
        shutil.copyfile(os.path.join(workdirs[0], name), os.path.join(workdir, name))
  evaluator = Evaluator(exp.task, exp.test_x, exp.test_y, config.train.eval_batch_size,
                        exp.bundle.task_metric)
  log(f"clients {exp.num_clients} (examples {client_sizes_text(exp.clients.num_examples)}), "
      f"prompt '{config.get('prompt', {}).get('kind', config.task.family)}' with "
      f"{num_params(exp.init_params)} parameters, "
      f"estimator {config.zo.estimator} ({exp.num_candidates} candidates/step), "
      f"test set {exp.bundle.test_split}")
  small = small_client_warning(np.asarray(exp.clients.num_examples), config.client.batch_size)
  if small:
    log(small)
  return exp, evaluator


def zero_shot(exp: Experiment, evaluator: Evaluator, config: ml_collections.ConfigDict,
              workdirs: Sequence[str], log: Log) -> list[dict[str, Any]]:
  """Every member's cached baselines, with the zero-shot one computed once (no prompt:
  the same for every member) and written where it is missing, unless
  ``baselines.zero_shot`` is off (against a paid API it costs queries)."""
  cached = [B.read_baselines(w) for w in workdirs]
  if config.baselines.zero_shot and any("zero_shot_accuracy" not in c for c in cached):
    fields = B.zero_shot_fields(exp, evaluator)
    for workdir, c in zip(workdirs, cached):
      if "zero_shot_accuracy" not in c:
        c.update(fields)
        B.write_baselines(workdir, c)
  if "zero_shot_accuracy" in cached[0]:
    log(f"zero-shot accuracy {100 * cached[0]['zero_shot_accuracy']:.2f}%")
  return cached


def evaluate_clients(executor: RoundExecutor, recs: list[RunRecords], r: int,
                     exps: list[Experiment]) -> dict[int, ClientTestSums]:
  """The federated evaluation after round ``r + 1`` of the members due
  (``RunRecords.federated_due``); ``{}`` when none is."""
  due = [i for i, rec in enumerate(recs) if rec.federated_due(r)]
  if not due:
    return {}
  sums = executor.evaluate_clients(r, exps, due)
  raise_blackbox_error(exps[0])
  return sums


def drive(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
          executor: RoundExecutor, log: Log = print,
          wrap_blackbox: Callable[[BlackBox], BlackBox] | None = None) -> list[dict[str, Any]]:
  """Runs (or resumes) one member per workdir with ``executor``; returns the summaries.

  Rerunning with the same configs and workdirs continues after the last round complete
  in every member; a finished run only rewrites its summaries and plots.
  """
  t_start = time.time()
  configs, workdirs = list(configs), list(workdirs)
  if len(configs) != len(workdirs) or len(set(workdirs)) != len(workdirs):
    raise ValueError(f"need one distinct workdir per config; got {len(configs)} configs and "
                     f"workdirs {workdirs}")
  executor.check(configs, workdirs)
  base = configs[0]
  exp, evaluator = prepare(base, workdirs, configs=configs, log=log,
                           wrap_blackbox=wrap_blackbox, build=executor.build)
  cached = zero_shot(exp, evaluator, base, workdirs, log)

  prefix = (lambda i: f"[{i}] ") if len(workdirs) > 1 else (lambda i: "")
  recs = [RunRecords(exp, c, w, t_start, log=lambda line, i=i: log(prefix(i) + line))
          for i, (c, w) in enumerate(zip(configs, workdirs))]
  like = exp.algorithm.init(exp.init_params)
  start_round = min(rec.readable_round(like) for rec in recs)  # sets unreadable rounds aside
  states = [rec.start(like, start_round)[0] for rec in recs]
  # The baselines keep the first task; a refreshed one (e.g. a new label map, from the
  # member's own prompt, into its own workdir) enters the member's rounds as data.
  schedules = [TaskSchedule(exp, evaluator, base.train.rounds, w) for w in workdirs]
  in_force = [s.resumed(start_round) for s in schedules]  # (experiment, evaluator) each
  for rec, (member_exp, _) in zip(recs, in_force):
    rec.exp = member_exp
  executor.start(exp, [e for e, _ in in_force], configs, workdirs, states, start_round,
                 schedules, log)

  for r in range(start_round, base.train.rounds):
    if not all([rec.may_run(r) for rec in recs]):  # a DP target: the same round for all
      break
    extras: list[dict[str, Any]] = [{} for _ in recs]
    for i, schedule in enumerate(schedules):
      if schedule.refreshes_before(r):
        member_exp, member_evaluator, extras[i] = schedule.refresh(
            r, in_force[i][0].algorithm.model(executor.state(i)), recs[i].meter)
        in_force[i] = (member_exp, member_evaluator)
        recs[i].exp = member_exp
        executor.use_task(i, member_exp, schedule)
    for rec in recs:
      rec.check_budget()
    t0 = time.time()
    outcomes = executor.round(r, [e for e, _ in in_force])
    try:
      raise_blackbox_error(exp)
    except Exception as e:
      e.add_note(f"stopped in round {r + 1} ({last_saved(r, workdirs[0])}): rerun the same "
                 "command to resume")
      raise
    seconds = time.time() - t0
    client_tests = evaluate_clients(executor, recs, r, [e for e, _ in in_force])
    for i, (rec, out) in enumerate(zip(recs, outcomes, strict=True)):
      try:
        rec.record_round(r, out.state, out.metrics, seconds, in_force[i][1],
                         {**extras[i], **out.extra}, counters=out.counters,
                         client_tests=client_tests.get(i))
      except FloatingPointError as e:
        if not executor.describe_member(i):
          raise
        raise FloatingPointError(f"{executor.describe_member(i)}: {e}") from e

  todo = [i for i, c in enumerate(cached)
          if base.baselines.local_only and "local_only_accuracy" not in c]
  if todo:
    t0 = time.time()
    fields = executor.local_only(exp, evaluator, todo, base.train.rounds, log)
    seconds = time.time() - t0
    for i in todo if fields is not None else []:
      cached[i].update(fields[i], local_only_seconds=seconds)
      B.write_baselines(workdirs[i], cached[i])
  return [rec.finish(executor.state(i), cached[i], in_force[i][1])
          for i, rec in enumerate(recs)]
