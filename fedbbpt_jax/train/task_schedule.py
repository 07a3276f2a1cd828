"""The task in force in every round, for tasks that re-derive themselves during training.

A task bundle may refresh its task before some rounds (``TaskBundle.refresh_rounds`` /
``refresh``: e.g. the image family's iterative label mapping re-derives the label map
from the current prompt). A refresh changes the task's *state* (``tasks.task_state``),
never the program: ``task_round`` rebuilds the algorithm around the state inside the
traced function, so one compiled round serves every refresh of a run, and a vmapped
sweep carries each member's own state on its sweep axis.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from fedbbpt_jax.blackbox import QueryMeter
from fedbbpt_jax.tasks import TaskRefresh, with_task_state
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.train.build import Experiment, raise_blackbox_error, with_task


def task_round(base: Experiment) -> Callable:
  """``apply(state, clients, key, hparams, task_state) -> (state, metrics)``: one round of
  ``base``'s algorithm on ``base``'s task around ``task_state`` (``tasks.task_state``;
  None: the task as built).

  The algorithm is rebuilt around the task inside the traced function, so a task
  refresh (e.g. a new label map) is a new argument value, not a new program: one
  compiled round per run, and one per vmapped sweep whose members each hold their own.
  """
  def apply(state, clients, key, hparams, state_of_task):
    algorithm = (base.algorithm if state_of_task is None else
                 with_task(base, with_task_state(base.task, state_of_task)).algorithm)
    return algorithm.apply(state, clients, key, hparams)

  return apply


def refreshed(base: Experiment, base_evaluator: Evaluator,
              refresh: TaskRefresh) -> tuple[Experiment, Evaluator]:
  """``base`` and its evaluator on a refreshed task (the evaluator's compiled functions
  are reused: the task's state is their argument)."""
  return with_task(base, refresh.task), base_evaluator.for_task(refresh.task)


class TaskSchedule:
  """The task in force in every round, for tasks that re-derive themselves
  (``TaskBundle.refresh``, e.g. the image family's iterative label mapping).

  ``base``/``base_evaluator`` are the experiment as first built (the baselines use
  them); ``in_force`` is the last refresh applied (None before the first), whose
  ``files`` a deployment ships to its nodes.
  """

  def __init__(self, base: Experiment, base_evaluator: Evaluator, rounds: int,
               workdir: str | None = None):
    self.base, self.base_evaluator = base, base_evaluator
    # Where this run's refreshes are kept (None: where the bundle was built).
    self.where = {} if workdir is None else {"workdir": workdir}
    self.rounds = base.bundle.refresh_rounds(rounds)
    self.in_force: TaskRefresh | None = None
    self.in_force_round = -1

  def refreshes_before(self, r: int) -> bool:
    return r in self.rounds

  def resumed(self, start_round: int) -> tuple[Experiment, Evaluator]:
    """The experiment of round ``start_round``: the last refresh before it, read back."""
    earlier = [q for q in self.rounds if q < start_round]
    if not earlier:
      return self.base, self.base_evaluator
    self.in_force = self.base.bundle.refresh(None, earlier[-1], None, **self.where)
    self.in_force_round = earlier[-1]
    return refreshed(self.base, self.base_evaluator, self.in_force)

  def refresh(self, r: int, params: Any, meter: QueryMeter
              ) -> tuple[Experiment, Evaluator, dict[str, Any]]:
    """Re-derives the task before round ``r`` from ``params`` (metered); returns the new
    experiment, its evaluator and the metrics row's refresh entries."""
    t0 = time.time()
    current = self.in_force.task if self.in_force is not None else self.base.task
    refresh = self.base.bundle.refresh(params, r, current, **self.where)
    raise_blackbox_error(self.base)
    meter.add(bb_examples=refresh.examples, bb_calls=refresh.calls)
    self.in_force, self.in_force_round = refresh, r
    exp, evaluator = refreshed(self.base, self.base_evaluator, refresh)
    return exp, evaluator, {"task_refreshed": True, "refresh_bb_examples": refresh.examples,
                            "refresh_seconds": time.time() - t0}
