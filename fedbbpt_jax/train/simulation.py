"""One simulated experiment: ``run`` drives ``SimulatedRounds``, one compiled round.

Every round is one call of the algorithm's round (``task_schedule.task_round``: the
task's state, e.g. a refreshed label map, is an argument), jitted unless
``config.parallel.backend='loop'``; the ``shard`` backend keeps the server state and
the client data replicated over its device mesh.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import ml_collections

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.parallel import replicate
from fedbbpt_jax.tasks import task_state
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.train.baselines import local_only_fields
from fedbbpt_jax.train.build import Experiment
from fedbbpt_jax.train.driver import Log, RoundExecutor, RoundOutcome, drive
from fedbbpt_jax.train.task_schedule import TaskSchedule, task_round


def placed(tree: Any, backend: str) -> Any:
  """The ``shard`` backend keeps state and client data replicated over its mesh."""
  return replicate(tree) if backend == "shard" else tree


def rounds_runner(apply: Callable, backend: str) -> Callable:
  """``apply`` op by op (``backend='loop'``, for debugging) or compiled."""
  return apply if backend == "loop" else jax.jit(apply)


class SimulatedRounds(RoundExecutor):
  """One member's rounds, simulated: every round one call of the compiled round."""

  def start(self, exp: Experiment, exps: list[Experiment],
            configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
            states: list[Any], start_round: int, schedules: list[TaskSchedule], log: Log
            ) -> None:
    del exps, configs, workdirs, start_round, log
    self.backend = exp.config.parallel.backend
    self.refreshing = bool(schedules[0].rounds)
    self._state, self.clients = placed((states[0], exp.clients), self.backend)
    # A server step on the host (BO's GP fit) runs eagerly around its jitted client step.
    self.step = rounds_runner(task_round(exp),
                              "loop" if exp.algorithm.host_server else self.backend)

  def state(self, i: int) -> Any:
    return self._state

  def round(self, r: int, exps: list[Experiment]) -> list[RoundOutcome]:
    exp = exps[0]
    state_of_task = placed(task_state(exp.task), self.backend) if self.refreshing else None
    self._state, m = self.step(self._state, self.clients, exp.root_key, exp.hparams,
                               state_of_task)
    jax.block_until_ready(m["train_loss"])
    return [RoundOutcome(self._state, m)]

  def local_only(self, exp: Experiment, evaluator: Evaluator, todo: list[int], rounds: int,
                 log: Log) -> dict[int, dict[str, Any]]:
    """Every client trains alone for the same rounds and steps; each generator is
    evaluated."""
    log("local-only baseline: every client trains alone for the same rounds ...")
    step = rounds_runner(exp.local_only.apply,
                         "loop" if exp.local_only.host_server else self.backend)
    state, clients = placed((exp.local_only.init(exp.init_params), exp.clients), self.backend)
    for _ in range(rounds):
      state, _ = step(state, clients, exp.root_key, exp.hparams)
    return {i: local_only_fields(exp, evaluator, state.params, rounds) for i in todo}


def run(config: ml_collections.ConfigDict, workdir: str, log: Log = print,
        wrap_blackbox: Callable[[BlackBox], BlackBox] | None = None) -> dict[str, Any]:
  """Runs (or resumes) an experiment in ``workdir`` and returns its summary.

  Rerunning with the same config and workdir continues after the last complete
  round; a finished run only rewrites its summary and plots. ``wrap_blackbox``
  wraps the black box (tests count its real calls).
  """
  return drive([config], [workdir], SimulatedRounds(), log, wrap_blackbox)[0]
