"""One run's records in its workdir: query meter, checkpoints, metrics rows, summary, plot.

``RunRecords`` is the only writer of ``metrics.jsonl`` rows and ``summary.json``: the
driver hands it every round's outcome (``record_round``) and the end of the run
(``finish``). A row holds the fixed columns (round, loss, cohort, evaluation, meter,
wall time), the round's refresh entries, and every other metric the round reported
under its own name (``round_metrics``): an algorithm, aggregator, simulated fault or
task family adds a column by returning it, with no edit here.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import ml_collections
import numpy as np

from fedbbpt_jax.blackbox import QueryMeter
from fedbbpt_jax.data import local_test_parts
from fedbbpt_jax.federated import fault_summary
from fedbbpt_jax.federated.aggregation.privacy import dp_settings, rounds_within_target
from fedbbpt_jax.federated.algorithms.algorithm import tree_bytes
from fedbbpt_jax.prompts import num_params
from fedbbpt_jax.tasks.evaluation import Evaluator, task_metric_fields
from fedbbpt_jax.tasks.federated_evaluation import (ClientTestSums, evaluation_mode,
                                                    federated_report)
from fedbbpt_jax.train import records
from fedbbpt_jax.train.baselines import client_reports
from fedbbpt_jax.train.build import Experiment, raise_blackbox_error
from fedbbpt_jax.train.checkpoint import (CheckpointReadError, NoReadableCheckpoint,
                                          RoundCheckpointer)
from fedbbpt_jax.train.plots import plot_accuracy
from fedbbpt_jax.train.round_metrics import (federated_summary_fields, final_metric_fields,
                                             round_metric_columns)
from fedbbpt_jax.train.summary_table import method_name


def last_saved(round_idx: int, workdir: str) -> str:
  """Which round a stopped run left saved, for error messages."""
  if round_idx:
    return f"round {round_idx} is the last one saved in {workdir}"
  return f"no round is saved yet in {workdir}"


class RunRecords:
  """One run's records in its workdir: query meter, checkpoints, metrics rows, summary.

  ``exp`` gives the experiment's shape (clients, costs, algorithm); ``config`` is the
  run's own config (a sweep member may differ from ``exp.config`` in its seed or
  hyper-parameters, never in anything that changes the program).
  """

  def __init__(self, exp: Experiment, config: ml_collections.ConfigDict, workdir: str,
               t_start: float, log: Callable[[str], None] = print):
    self.exp, self.config, self.workdir, self.log = exp, config, workdir, log
    self.t_start = t_start
    self.meter = QueryMeter(budget_examples=config.blackbox.budget_examples)
    self.ckpt = RoundCheckpointer(workdir)
    self.metrics_log = records.MetricsLog(workdir)
    self.prior_seconds = 0.0
    # The family's own work counters (TaskBundle.counters): the totals saved at the round
    # resumed from, and the process's counts then (the meter's rule: what this process did
    # before the restore is not counted, what it does after is).
    self.carried_counters: dict[str, int] = {}
    self.counters_at_restore: dict[str, int] = {}
    self._restored: tuple[int, Any, dict] | None = None  # what ``readable_round`` read
    # Client-level DP (server.aggregator='dp_gaussian'): ε is a pure function of the
    # config and the rounds done; a target ε ends the run before the round exceeding it.
    self.privacy = dp_settings(config)
    self.last_round = (rounds_within_target(self.privacy, config.train.rounds)
                       if self.privacy else config.train.rounds)
    # Where the global model is tested (train.evaluation): the server's test set, the
    # clients' local test splits (the executor's ``evaluate_clients``), or both.
    self.evaluation = evaluation_mode(config)
    if self.federated:  # refuse a test set the clients cannot split, before round 1
      local_test_parts(exp.test_y, config.data)

  @property
  def federated(self) -> bool:
    """Whether the clients test the global model on their local test splits."""
    return self.evaluation in ("federated", "both")

  def evaluation_due(self, r: int) -> bool:
    """Whether round ``r + 1`` is tested (every ``train.eval_every`` rounds and the last)."""
    return (r + 1) % self.config.train.eval_every == 0 or r + 1 == self.last_round

  def federated_due(self, r: int) -> bool:
    """Whether the clients test the model after round ``r + 1``."""
    return self.federated and self.evaluation_due(r)

  def may_run(self, r: int) -> bool:
    """Whether round ``r + 1`` may run; logs why not when ``server.dp.target_epsilon``
    stops the run before it (ε after ``r + 1`` rounds would exceed the target)."""
    if r < self.last_round:
      return True
    if r < self.config.train.rounds:
      p = self.privacy
      self.log(f"stopping before round {r + 1}: ε after it would be {p.epsilon(r + 1):.4g} > "
               f"server.dp.target_epsilon={p.target_epsilon:g}; ε reached after round {r}: "
               f"{p.epsilon(r):.4g} (δ={p.delta:g})")
    return False

  def latest_round(self) -> int:
    return self.ckpt.latest_round() or 0

  def readable_round(self, like_state: Any) -> int:
    """The latest round whose checkpoint reads back (0: none saved).

    A later round whose checkpoint is unreadable (truncated, overwritten) is moved to
    ``checkpoints_unreadable/`` with a logged warning naming the round and the file,
    so the run resumes from the previous complete round and saves that round again.

    Raises:
      NoReadableCheckpoint: rounds are saved but none reads back (names the workdir).
    """
    failures = []
    for round_idx in reversed(self.ckpt.rounds()):
      try:
        self._restored = (round_idx, *self.ckpt.restore(round_idx, like_state))
        break
      except CheckpointReadError as e:
        failures.append(e)
    else:
      if failures:
        raise NoReadableCheckpoint(
            f"no readable checkpoint in {self.workdir}: rounds {self.ckpt.rounds()} all fail "
            f"to read (round {failures[0].round_idx}: {failures[0]}); restore "
            f"{self.ckpt.directory} from a backup or use a new --workdir")
      return 0
    for e in failures:
      moved = self.ckpt.set_aside(e.round_idx)
      self.log(f"warning: {e}; moved it to {moved} and resuming from round {round_idx}")
    return round_idx

  def start(self, like_state: Any, start_round: int | None = None) -> tuple[Any, int]:
    """Restores round ``start_round`` (default: the latest readable one) or starts afresh.

    Returns ``(state, start_round)``; metrics rows after that round, and a last line a
    crash cut short, are dropped with a logged warning naming the file and the round.
    """
    start_round = self.readable_round(like_state) if start_round is None else start_round
    state = like_state
    if start_round:
      restored, self._restored = self._restored, None
      if restored is not None and restored[0] == start_round:
        state, meta = restored[1:]
      else:
        state, meta = self.ckpt.restore(start_round, like_state)
      self.meter.load_state_dict(meta["queries"])
      self.prior_seconds = meta["wall_seconds"]
      self.exp.bundle.load_cache_state(meta.get("task_cache", {}))
      self.carried_counters = {k: int(v) for k, v in meta.get("task_counters", {}).items()}
      self.counters_at_restore = self.exp.bundle.counters()
      self.log(f"resuming after round {start_round}")
    else:
      self.meter.add(bb_examples=self.exp.bundle.setup_examples,
                     bb_calls=self.exp.bundle.setup_calls)
    for warning in self.metrics_log.truncate(start_round):
      self.log(f"warning: {warning}")
    return state, start_round

  def task_counters(self) -> dict[str, int]:
    """The family's work counters over the whole run, resumes included."""
    now = self.exp.bundle.counters()
    return {k: self.carried_counters.get(k, 0) + int(v) - self.counters_at_restore.get(k, 0)
            for k, v in now.items()}

  def check_budget(self) -> None:
    self.meter.check_budget(self.exp.train_examples_per_round())

  def record_round(self, r: int, state: Any, m: dict, round_seconds: float,
                   evaluator: Evaluator, extra: dict[str, Any] | None = None,
                   counters: dict[str, int] | None = None,
                   client_tests: ClientTestSums | None = None) -> dict[str, Any]:
    """Meters, evaluates (when due), appends the row of round ``r + 1`` (with ``extra``),
    checkpoints it.

    ``counters``: the round's query-meter increments when they were measured (a
    deployment sums what its nodes reported); default the algorithm's ``RoundCost``.
    ``client_tests``: the clients' sums of the federated evaluation after this round
    (``federated_due``), reported as the ``fed_test_*`` columns.
    """
    config, exp = self.config, self.exp
    # A Poisson cohort's size varies: the round costs what its members spent.
    cost = (dataclasses.replace(exp.round_cost, client_activations=int(m["participants"]))
            if "participants" in m else exp.round_cost)
    if int(m.get("cohort_overflow", 0)):
      self.log(f"warning: round {r + 1}: {int(m['cohort_overflow'])} Poisson-sampled clients "
               f"did not fit the cohort's {np.asarray(m['cohort']).size} slots and sat the "
               "round out (an event of probability < 1e-10 a round; see "
               "federated/algorithms/poisson.py)")
    empty = "participants" in m and not int(m["participants"])
    no_survivors = bool(m.get("no_survivors", False))
    train_loss = None if no_survivors or empty else float(m["train_loss"])
    if empty:
      dp = config.server.get("aggregator") == "dp_gaussian"
      self.log(f"round {r + 1}: Poisson sampling drew no client (expected "
               f"{exp.cohort_size}); " + ("DP-FedAvg released its noise-only step" if dp else
                                          "the model and the server's state are unchanged"))
    elif no_survivors:  # dropouts: nobody reported; parameters and server state kept
      cause = (f"config.server.dropout={config.server.dropout}" if counters is None
               else "no node answered in time")
      self.log(f"round {r + 1}: no client of the cohort reported ({cause}); the model is "
               "unchanged")
    elif not np.isfinite(train_loss):
      raise FloatingPointError(f"round {r + 1}: training loss is {train_loss}; "
                               "lower config.client.lr or config.zo.sigma")
    scored = cost.bb_calls
    if "nonfinite_candidates" in m and 0 < scored <= int(m["nonfinite_candidates"]):
      raise FloatingPointError(
          f"round {r + 1}: the black box answered NaN or inf for all {scored} candidates of "
          f"the round, so no step moved; the round is not saved ({last_saved(r, self.workdir)})"
          ": check the black box, then rerun the same command to resume")
    # A dropped client still spent its queries (it trained, then failed to report).
    self.meter.add(**(cost.counters() if counters is None else counters))
    cohort = np.asarray(m["cohort"])
    row = {"round": r + 1, "train_loss": train_loss,
           "cohort": cohort[cohort >= 0].tolist(),  # a Poisson cohort's empty slots: -1
           "round_seconds": round_seconds, **(extra or {})}
    # Everything else the round reported, under its own name (round_metrics.py): e.g.
    # survivors and attackers (simulated faults), nonfinite_candidates, the traffic
    # (upload_bytes, download_bytes), consensus_distance (decentralized), an aggregator's
    # metrics (DP clipping), and any metric of a user's algorithm.
    row.update(round_metric_columns(m))
    if "survivors" in m:  # dropouts: clients that reported
      row["no_survivors"] = no_survivors
    if self.privacy:
      row.update(dp_epsilon=self.privacy.epsilon(r + 1), dp_delta=self.privacy.delta)
    if self.evaluation != "federated" and self.evaluation_due(r):
      rep = evaluator.report(exp.algorithm.model(state))
      raise_blackbox_error(exp)
      self.meter.add(eval_bb_examples=evaluator.num_examples)
      if exp.algorithm.client_models is not None:  # every client's own model too
        accs, f1s = client_reports(exp, evaluator, exp.algorithm.client_models(state))
        self.meter.add(eval_bb_examples=len(accs) * evaluator.num_examples)
        row.update(test_client_accuracy_mean=float(np.mean(accs)),
                   test_client_accuracy_worst=float(np.min(accs)),
                   test_client_macro_f1_mean=float(np.mean(f1s)))
      row.update(test_accuracy=rep["accuracy"], test_loss=rep["loss"],
                 test_macro_f1=rep["macro_f1"], test_per_class_recall=rep["per_class_recall"],
                 collapsed_to_majority=rep["collapsed_to_majority"],
                 **task_metric_fields(rep, "test_"))
      if rep["collapsed_to_majority"]:
        self.log(f"warning: round {r + 1}: one class takes "
                 f"{100 * rep['max_prediction_share']:.0f}% of the test predictions "
                 "(majority collapse): judge by macro-F1, not accuracy")
    if client_tests is not None:
      # Counted as evaluation queries, as the central test set's (not in bb_examples).
      self.meter.add(eval_bb_examples=int(client_tests.num_examples.sum()))
      row.update(federated_report(client_tests))
      # The model went to every client asked (a node that then failed received it too).
      row["fed_test_download_bytes"] = client_tests.clients_asked * tree_bytes(
          exp.algorithm.model(state))
      if "fed_test_accuracy" not in row:
        self.log(f"warning: round {r + 1}: no client reported its local test sums")
    wall = self.prior_seconds + time.time() - self.t_start
    row.update(wall_seconds=wall, **self.meter.state_dict())
    self.metrics_log.append(row)
    if self.latest_round() < r + 1:  # a sweep member may already hold this round
      self.ckpt.save(r + 1, state, {"queries": self.meter.state_dict(), "wall_seconds": wall,
                                    "task_counters": self.task_counters(),
                                    "task_cache": self.exp.bundle.cache_state()})
    acc_text = f"acc {100 * row['test_accuracy']:.2f}%  " if "test_accuracy" in row else ""
    if "fed_test_accuracy" in row:
      acc_text += (f"fed acc {100 * row['fed_test_accuracy']:.2f}% (clients "
                   f"{100 * row['fed_test_client_accuracy_min']:.1f}-"
                   f"{100 * row['fed_test_client_accuracy_max']:.1f}%)  ")
    loss_text = "n/a" if train_loss is None else f"{train_loss:.4f}"
    self.log(f"round {r + 1}/{config.train.rounds}  {acc_text}train loss {loss_text}  "
             f"queries {self.meter.counts['bb_examples']:,}  {round_seconds:.1f}s")
    return row

  def finish(self, state: Any, baselines: dict[str, Any], evaluator: Evaluator
             ) -> dict[str, Any]:
    """Writes ``summary.json`` and the accuracy plot; returns the summary."""
    self.ckpt.close()
    config, exp = self.config, self.exp
    meter = self.meter
    rows = self.metrics_log.rows()
    evaluated = [r for r in rows if "test_accuracy" in r]
    if not evaluated and not any("fed_test_accuracy" in r for r in rows):
      raise records.MetricsLogDamaged(
          f"{self.metrics_log.path} holds no evaluated row (its rows were lost after round "
          f"{self.latest_round()} was saved), so summary.json cannot be written: restore the "
          "file, or rerun in a new --workdir")
    # train.evaluation='federated' tests on the server's test set never: its fields are None.
    final = evaluated[-1] if evaluated else {}
    summary = {
        "final_accuracy": final.get("test_accuracy"),
        "final_loss": final.get("test_loss"),
        "final_macro_f1": final.get("test_macro_f1"),
        "final_per_class_recall": final.get("test_per_class_recall"),
        "collapsed_to_majority": final.get("collapsed_to_majority"),
        "best_accuracy": max((r["test_accuracy"] for r in evaluated), default=None),
        "algorithm": exp.algorithm.name,
        "rounds": config.train.rounds,
        "num_clients": exp.num_clients,
        "cohort_size": exp.cohort_size,
        "black_box_queries": meter.counts["bb_examples"],
        "query_counters": meter.state_dict(),
        "prompt_parameters": num_params(exp.init_params),
        "test_examples": evaluator.num_examples,
        "test_split": exp.bundle.test_split,
        "wall_seconds": self.prior_seconds + time.time() - self.t_start,
        "label_histograms": np.asarray(exp.label_histograms).tolist(),
    }
    refreshes = [r for r in rows if r.get("task_refreshed")]
    if refreshes:  # e.g. the image family's iterative label mapping
      summary.update(task_refreshes=len(refreshes),
                     refresh_bb_examples=int(sum(r["refresh_bb_examples"] for r in refreshes)))
    summary.update(baselines)
    if "test_task_metric" in final:  # e.g. GLUE: F1 (MRPC, QQP), Matthews (CoLA), accuracy
      summary.update(final_task_metric=final["test_task_metric"],
                     task_metric_name=final["task_metric_name"])
    summary.update(exp.algorithm.summary)  # e.g. a topology's spectral gap
    if config.server.get("aggregator", "weighted_mean") != "weighted_mean":
      summary["aggregator"] = config.server.aggregator
    summary.update(fault_summary(config, exp.num_clients))  # attack, malicious ids, dropout
    if self.privacy:
      summary.update(self.privacy.summary_fields(rows[-1]["round"]))
      if rows[-1]["round"] < config.train.rounds:  # server.dp.target_epsilon stopped the run
        summary["dp_stopped_at_round"] = rows[-1]["round"]
    for key in ("test_client_accuracy_mean", "test_client_accuracy_worst"):
      if key in rows[-1]:
        summary["final_" + key.removeprefix("test_")] = rows[-1][key]
    # The last round's metrics of the algorithm (e.g. consensus_distance, a user's own).
    summary.update(final_metric_fields(rows[-1], meter.state_dict()))
    summary.update(federated_summary_fields(rows, self.evaluation))  # none if 'central'
    summary.update(exp.bundle.describe(exp.algorithm.model(state)))  # e.g. the learned prompt
    summary.update(self.task_counters())  # after describe: its own work counts too
    summary.setdefault("zero_shot_accuracy", None)
    summary.setdefault("local_only_accuracy", None)
    records.write_json(os.path.join(self.workdir, "summary.json"), summary)
    method = method_name(summary)
    plot_accuracy(rows, os.path.join(self.workdir, "accuracy.png"),
                  summary["zero_shot_accuracy"], summary["local_only_accuracy"],
                  title=f"{method}, {config.data.get('name', config.task.family)}, "
                      f"{exp.num_clients} clients",
                  method=method)
    return summary
