"""The baselines a run is judged against, cached in the workdir's ``baselines.json``.

* **zero-shot**: the black box with no prompt (seed-independent: a sweep computes it
  once and copies it into every member);
* **local-only**: every client trains alone for the same rounds and steps, and each
  client's generator is evaluated (accuracy and macro-F1 per client, their mean and the
  worst accuracy). What trains the clients is the round executor's (``driver``); the
  fields are computed here from the per-client generators it returns.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from fedbbpt_jax.tasks.evaluation import Evaluator, task_metric_fields
from fedbbpt_jax.train import records
from fedbbpt_jax.train.build import Experiment, raise_blackbox_error

BASELINES_FILE = "baselines.json"


def zero_shot_fields(exp: Experiment, evaluator: Evaluator) -> dict[str, Any]:
  """The zero-shot baseline's ``baselines.json`` entries (no prompt: seed-independent)."""
  rep = evaluator.report(None)
  raise_blackbox_error(exp)
  return dict(zero_shot_accuracy=rep["accuracy"], zero_shot_loss=rep["loss"],
              zero_shot_macro_f1=rep["macro_f1"],
              zero_shot_per_class_recall=rep["per_class_recall"],
              zero_shot_collapsed_to_majority=rep["collapsed_to_majority"],
              **task_metric_fields(rep, "zero_shot_"))


def client_reports(exp: Experiment, evaluator: Evaluator,
                   client_params: Any) -> tuple[list[float], list[float]]:
  """Test accuracy and macro-F1 of every client's own generator (leading client axis)."""
  accs, f1s = [], []
  for i in range(exp.num_clients):
    rep = evaluator.report(jax.tree.map(lambda a: a[i], client_params))
    raise_blackbox_error(exp)
    accs.append(float(rep["accuracy"]))
    f1s.append(float(rep["macro_f1"]))
  return accs, f1s


def local_only_fields(exp: Experiment, evaluator: Evaluator, client_params: Any,
                      rounds: int) -> dict[str, Any]:
  """Local-only entries from the per-client generators (leading client axis).

  Accuracy and macro-F1 are per client, then averaged (and the worst accuracy).
  """
  accs, f1s = client_reports(exp, evaluator, client_params)
  queries = rounds * exp.train_examples_per_round(local_only=True)
  return {"local_only_accuracy": float(np.mean(accs)),
          "local_only_worst_accuracy": float(np.min(accs)),
          "local_only_client_accuracies": [float(a) for a in accs],
          "local_only_macro_f1": float(np.mean(f1s)),
          "local_only_client_macro_f1s": [float(f) for f in f1s],
          "local_only_black_box_queries": int(queries)}


def read_baselines(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, BASELINES_FILE)
  return records.read_json(path) if os.path.exists(path) else {}


def write_baselines(workdir: str, baselines: dict[str, Any]) -> None:
  records.write_json(os.path.join(workdir, BASELINES_FILE), baselines)
