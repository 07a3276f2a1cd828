"""Federated evaluation: every client scores the global generator on its local test split
and sends sums only; the server adds them (``config.train.evaluation``).

A client's sums are its confusion matrix ``[C, C]`` (counts; row = true class, column =
predicted), its summed loss and its example count. Added over clients they are the
example-weighted totals, so the pooled accuracy, mean loss, macro-F1 and per-class
recall are those of the union of the splits (``federated_report``); the per-client
accuracies give the spread over clients (a fairness view).

One function scores the rows: ``local_test_sums`` (jittable) takes rows of any number of
clients, each row tagged with its client, and adds every row into its client's sums.
``LocalTestEvaluator`` calls it in chunks of at most ``train.eval_batch_size`` rows:

* a deployed node (``for_client``) on its own split: every row its own;
* the simulation (``for_clients``) on every client's split at once: the splits one after
  the other, so one chunk may hold rows of two clients. The clients are scored in the
  same batched calls without padding them to a common length: as with the central
  ``Evaluator``, every row sent to the black box is a test example (padding rows would
  be queries a deployed client never makes).

Both give the same counts; the loss sums agree to float rounding (the chunks differ).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.tasks.classification_metrics import macro_f1, per_class_recall
from fedbbpt_jax.tasks.protocol import Task, task_state, with_task_state

EVALUATIONS = ("central", "federated", "both")  # config.train.evaluation
DEFAULT_EVALUATION = "central"


def evaluation_mode(config: Any) -> str:
  """``config.train.evaluation`` (``'central'`` when the config has no such field)."""
  return config.train.get("evaluation", DEFAULT_EVALUATION)


class ClientTestSums(NamedTuple):
  """The sums of one federated evaluation, one row per client that reported (host arrays).

  Attributes:
    partition_ids: ``[K]`` the clients.
    confusion: ``[K, C, C]`` int64 counts, row = true class, column = predicted class.
    loss_sum: ``[K]`` float64 summed per-example loss.
    num_examples: ``[K]`` int64 examples scored.
    asked: how many clients were sent the model (``None``: those that reported; a
      deployment also asks nodes that then do not answer).
  """

  partition_ids: np.ndarray
  confusion: np.ndarray
  loss_sum: np.ndarray
  num_examples: np.ndarray
  asked: int | None = None

  @classmethod
  def concatenate(cls, parts: Sequence["ClientTestSums"], num_classes: int
                  ) -> "ClientTestSums":
    """The clients of ``parts`` together (none: an empty evaluation)."""
    if not parts:
      return cls(np.zeros((0,), np.int64), np.zeros((0, num_classes, num_classes), np.int64),
                 np.zeros((0,), np.float64), np.zeros((0,), np.int64))
    return cls(*(np.concatenate(field) for field in zip(*(p[:4] for p in parts))))

  @property
  def clients_asked(self) -> int:
    return len(self.partition_ids) if self.asked is None else int(self.asked)


# Bytes of one client's reply: its id, example count, loss sum and seconds, then every
# non-zero confusion cell as an index and a count (8 bytes each: evaluation_wire.py).
SUMS_FIXED_FIELDS, SUMS_BYTES_PER_NUMBER = 4, 8


def sums_upload_bytes(sums: ClientTestSums) -> int:
  """What the reporting clients sent: ``8 x (4 + 2 x non-zero cells)`` each."""
  cells = int(np.count_nonzero(sums.confusion))
  return SUMS_BYTES_PER_NUMBER * (SUMS_FIXED_FIELDS * len(sums.partition_ids) + 2 * cells)


def local_test_sums(task: Task, params: Any, x: jnp.ndarray, y: jnp.ndarray,
              client_ids: jnp.ndarray, num_clients: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Confusion matrices ``[num_clients, C, C]`` and loss sums ``[num_clients]`` of rows
  ``x`` (labels ``y``), row ``i`` added into client ``client_ids[i]``'s sums.

  Jittable (``num_clients`` static); ``task`` is any ``Task``.
  """
  logits = task.logits(params, x)
  predicted = jnp.argmax(logits, -1)
  c = int(task.num_classes)
  confusion = jnp.zeros((num_clients, c, c), jnp.int32).at[client_ids, y, predicted].add(1)
  loss_sum = jnp.zeros((num_clients,), jnp.float32).at[client_ids].add(task.loss(logits, y))
  return confusion, loss_sum


class LocalTestEvaluator:
  """Scores local test splits with ``local_test_sums`` in chunks of ``batch_size`` rows.

  Full chunks have ``batch_size`` rows and the last the remainder (at most two compiled
  shapes); no row is padded. The task's refreshable state (``tasks.task_state``, e.g.
  a new label map) is an argument of the compiled function, so ``sums(params, task)``
  with a refreshed task does not recompile. Build with ``for_client`` (one client) or
  ``for_clients`` (every client, in partition order).
  """

  def __init__(self, task: Task, x: Any, y: np.ndarray, client_ids: np.ndarray,
               partition_ids: np.ndarray, batch_size: int):
    y = np.asarray(y).astype(np.int32)
    client_ids = np.asarray(client_ids, np.int32)
    self.partition_ids = np.asarray(partition_ids, np.int64)
    k = len(self.partition_ids)
    self.num_classes = int(task.num_classes)
    self.num_examples = np.bincount(client_ids, minlength=k).astype(np.int64)
    self._x, self._y, self._ids = jnp.asarray(x), jnp.asarray(y), jnp.asarray(client_ids)
    n = len(y)
    self._chunks = [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    self._base_state = task_state(task)

    def sums(state, params, x, y, ids):
      return local_test_sums(with_task_state(task, state), params, x, y, ids, k)

    self._jit_sums = jax.jit(sums)

  @classmethod
  def for_client(cls, task: Task, x: Any, y: np.ndarray, partition_id: int,
                 batch_size: int) -> "LocalTestEvaluator":
    """One client's split (a deployed node's)."""
    return cls(task, x, y, np.zeros(len(y), np.int32), np.asarray([partition_id]), batch_size)

  @classmethod
  def for_clients(cls, task: Task, x: Any, y: np.ndarray, parts: Sequence[np.ndarray],
                  batch_size: int) -> "LocalTestEvaluator":
    """Every client's split (the simulation's): ``parts[i]``, client ``i``'s rows of
    ``(x, y)``, scored one split after the other."""
    order = np.concatenate([np.asarray(p, np.int64) for p in parts])
    ids = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    return cls(task, np.asarray(x)[order], np.asarray(y)[order], ids,
               np.arange(len(parts)), batch_size)

  def sums(self, params: Any, task: Task | None = None) -> ClientTestSums:
    """The clients' sums for generator ``params`` (on ``task``'s state when given, e.g.
    the task in force after a refresh)."""
    state = self._base_state if task is None else task_state(task)
    k = len(self.partition_ids)
    confusion = np.zeros((k, self.num_classes, self.num_classes), np.int64)
    loss_sum = np.zeros((k,), np.float64)
    for sl in self._chunks:
      chunk_confusion, chunk_loss = self._jit_sums(state, params, self._x[sl], self._y[sl],
                                                   self._ids[sl])
      confusion += np.asarray(chunk_confusion, np.int64)
      loss_sum += np.asarray(chunk_loss, np.float64)
    return ClientTestSums(self.partition_ids.copy(), confusion, loss_sum,
                          self.num_examples.copy())


def federated_report(sums: ClientTestSums) -> dict[str, Any]:
  """The ``fed_test_*`` fields of one federated evaluation.

  Pooled over the clients that reported (the summed confusion matrix): ``accuracy``,
  ``loss`` (mean per example), ``macro_f1``, ``per_class_recall`` (None for a class no
  client holds); ``examples`` and ``clients`` counted, ``upload_bytes`` the replies'
  (``sums_upload_bytes``); the spread of the per-client
  accuracies (clients with at least one example): ``client_accuracy_min``, ``_mean``
  (unweighted), ``_max``, ``_std`` (population). With no example reported, only the
  counts.
  """
  n = int(sums.num_examples.sum())
  out: dict[str, Any] = {"fed_test_examples": n, "fed_test_clients": len(sums.partition_ids),
                         "fed_test_upload_bytes": sums_upload_bytes(sums)}
  if not n:
    return out
  confusion = sums.confusion.sum(axis=0)
  held = sums.num_examples > 0
  correct = np.trace(sums.confusion, axis1=1, axis2=2)
  accuracies = correct[held] / sums.num_examples[held]
  recall = per_class_recall(confusion)
  out.update(
      fed_test_accuracy=float(np.trace(confusion) / n),
      fed_test_loss=float(sums.loss_sum.sum() / n),
      fed_test_macro_f1=macro_f1(confusion),
      fed_test_per_class_recall=[None if np.isnan(r) else float(r) for r in recall],
      fed_test_client_accuracy_min=float(accuracies.min()),
      fed_test_client_accuracy_mean=float(accuracies.mean()),
      fed_test_client_accuracy_max=float(accuracies.max()),
      fed_test_client_accuracy_std=float(accuracies.std()))
  return out
