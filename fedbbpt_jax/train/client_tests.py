"""The simulated clients' federated evaluation: every client's local test split on this host.

A simulation (and a vmapped sweep) holds every client, so its federated evaluation
scores every client's local test split (``data.local_test_parts``: the run's test set
split by the training partition's rule on its own seed stream) with the function a
deployed node calls on its own split (``tasks.federated_evaluation``), every client in
the same batched black-box calls, and returns each client's sums as a node would.
"""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.data import local_test_parts
from fedbbpt_jax.tasks.federated_evaluation import ClientTestSums, LocalTestEvaluator
from fedbbpt_jax.train.build import Experiment


class SimulatedClientTests:
  """``tests(exp, state)``: every client's sums for the global model of ``state``.

  ``exp`` at construction gives the test set, the partition and the task whose compiled
  scoring is reused for a refreshed task (its state is an argument).
  """

  def __init__(self, exp: Experiment):
    parts = local_test_parts(exp.test_y, exp.config.data)
    self.evaluator = LocalTestEvaluator.for_clients(exp.task, exp.test_x, exp.test_y, parts,
                                                    exp.config.train.eval_batch_size)

  def __call__(self, exp: Experiment, state: Any) -> ClientTestSums:
    """The sums of the model ``exp.algorithm.model(state)`` on ``exp``'s task in force."""
    return self.evaluator.sums(exp.algorithm.model(state), exp.task)
