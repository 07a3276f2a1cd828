"""A deployed client's federated evaluation: the global model on its local test split.

The node builds its view of the experiment as for training (``node.node_experiment``),
takes its own local test split (``data.local_test_parts``: the reproduction convenience,
the run's test set split by the training partition's rule on its own seed stream), scores
the global model the server sent with the function the simulation scores every client
with (``tasks.federated_evaluation.LocalTestEvaluator``) and replies the sums only: its
confusion matrix, loss sum and example count (``TEST_SUMS``; ``messages.py``). The
server adds the replies (``strategy.FedBBPTStrategy.aggregate_evaluate``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from flwr.app import Message, RecordDict

from fedbbpt_jax.core import import_plugins
from fedbbpt_jax.data import local_test_parts
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.codec import from_array_record
from fedbbpt_jax.flower.evaluation_wire import client_sums_record
from fedbbpt_jax.flower.node import node_experiment
from fedbbpt_jax.flower.settings import node_settings
from fedbbpt_jax.tasks.federated_evaluation import LocalTestEvaluator
from fedbbpt_jax.train.build import Experiment

# This process's local test evaluators, by the experiment they score (a long-lived
# ClientApp process, and the in-process tests, evaluate many rounds on the same one).
_EVALUATORS: dict[int, tuple[Experiment, LocalTestEvaluator]] = {}
_KEEP = 4


def local_test_evaluator(exp: Experiment, partition_id: int) -> LocalTestEvaluator:
  """Partition ``partition_id``'s local test split of ``exp``, ready to score."""
  if id(exp) not in _EVALUATORS:
    while len(_EVALUATORS) >= _KEEP:
      _EVALUATORS.pop(next(iter(_EVALUATORS)))
    rows = local_test_parts(exp.test_y, exp.config.data)[partition_id]
    evaluator = LocalTestEvaluator.for_client(exp.task, np.asarray(exp.test_x)[rows],
                                              np.asarray(exp.test_y)[rows], partition_id,
                                              exp.config.train.eval_batch_size)
    _EVALUATORS[id(exp)] = (exp, evaluator)  # the experiment kept: its id stays its own
  return _EVALUATORS[id(exp)][1]


def evaluate_content(content: RecordDict, node_config: Any) -> RecordDict:
  """Scores the global model in an evaluate message's ``content`` on this node's local
  test split; the reply's content (what the node's worker runs, too)."""
  node = node_settings(node_config)
  import_plugins(node.imports)  # this node's own plugins (its config's, not the server's)
  exp, _ = node_experiment(node, content[M.RUN])
  t0 = time.time()
  like = exp.algorithm.model(exp.algorithm.init(exp.init_params))
  params = from_array_record(content[M.GLOBAL], like,
                             what="the global model sent for evaluation")
  sums = local_test_evaluator(exp, node.partition_id).sums(params, exp.task)
  exp.bundle.blackbox.raise_pending_error()
  return RecordDict({M.TEST_SUMS: client_sums_record(sums, time.time() - t0)})


def evaluate_reply(message: Message, node_config: Any) -> Message:
  """Scores the global model in ``message`` on this node's local test split; the reply."""
  return Message(evaluate_content(message.content, node_config), reply_to=message)
