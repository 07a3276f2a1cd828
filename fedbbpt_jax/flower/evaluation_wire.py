"""The wire form of one client's federated-evaluation sums (the ``TEST_SUMS`` record).

A node replies its sums as a ``MetricRecord`` (``client_sums_record``); the server reads
each reply back (``client_sums_of``), checking that the counts fit the task before
adding them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import MetricRecord

from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.tasks.federated_evaluation import ClientTestSums


def client_sums_record(sums: ClientTestSums, seconds: float) -> MetricRecord:
  """One client's sums as the ``TEST_SUMS`` record of its reply.

  The confusion matrix travels sparse: the flat indices (``true * C + predicted``) of
  its non-zero cells and their counts, at most one cell per example (a 1,000-class
  task's matrix would otherwise be a million numbers per node).
  """
  flat = sums.confusion[0].ravel()
  cells = np.flatnonzero(flat)
  return MetricRecord({M.PARTITION_ID: int(sums.partition_ids[0]),
                       "num-examples": int(sums.num_examples[0]),
                       "loss-sum": float(sums.loss_sum[0]),
                       "confusion-cells": [int(i) for i in cells],
                       "confusion-counts": [int(flat[i]) for i in cells],
                       "eval-seconds": float(seconds)})


def client_sums_of(record: Any, num_classes: int) -> ClientTestSums:
  """The ``ClientTestSums`` of one reply's ``TEST_SUMS`` record.

  Raises:
    ValueError: a field is missing, or the counts do not fit ``num_classes`` classes
      (a cell outside the ``[C, C]`` matrix or twice, a count below 1, or counts whose
      total is not ``num-examples``).
  """
  record = dict(record)
  missing = [k for k in (M.PARTITION_ID, "num-examples", "loss-sum", "confusion-cells",
                         "confusion-counts") if k not in record]
  if missing:
    raise ValueError(f"the test sums lack {missing}")
  cells = np.asarray(record["confusion-cells"], np.int64)
  counts = np.asarray(record["confusion-counts"], np.int64)
  n, size = int(record["num-examples"]), num_classes * num_classes
  if cells.shape != counts.shape or len(np.unique(cells)) != len(cells) or (
      len(cells) and (cells.min() < 0 or cells.max() >= size)):
    raise ValueError(f"the confusion cells {cells.tolist()[:10]} are not distinct cells of "
                     f"the {num_classes} x {num_classes} matrix with one count each "
                     f"({len(counts)} counts)")
  if (counts < 1).any() or int(counts.sum()) != n:
    raise ValueError(f"the confusion counts (sum {int(counts.sum())}, least "
                     f"{int(counts.min()) if len(counts) else 0}) do not add up to "
                     f"num-examples={n} with every count >= 1")
  confusion = np.zeros(size, np.int64)
  confusion[cells] = counts
  return ClientTestSums(np.asarray([int(record[M.PARTITION_ID])], np.int64),
                        confusion.reshape(1, num_classes, num_classes),
                        np.asarray([float(record["loss-sum"])], np.float64),
                        np.asarray([n], np.int64))
