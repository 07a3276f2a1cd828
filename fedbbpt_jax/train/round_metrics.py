"""What a round's metrics become in ``metrics.jsonl`` and ``summary.json``.

An algorithm's round returns a metrics dict (its ``server_update``'s, plus what simulated
faults and the traffic count add). The records writer writes what it gets: every entry
becomes a column of the round's row under its own name (a nested dict, such as an
aggregator's ``metrics["aggregator"]``, is flattened into the row), as JSON numbers or
lists. Only ``train_loss``, ``cohort`` and ``no_survivors`` are read by the loop itself
(``RunRecords.record_round``). The summary then holds ``final_<name>`` for every such
column of the last row.

So a new algorithm's per-round metric (e.g. its ``client_update`` reports a statistic
in its upload and its ``server_update`` returns the cohort's mean) reaches both files
with no file of the library edited.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

# Entries of a round's metrics the loop reads and writes itself.
LOOP_READ_METRICS = ("train_loss", "cohort", "no_survivors")
# Row columns the loop writes that are not an algorithm's round metric (with every column
# starting with LOOP_ROW_PREFIXES and the query meter's counters).
LOOP_ROW_COLUMNS = frozenset({
    "round", "train_loss", "cohort", "round_seconds", "wall_seconds", "survivors",
    "no_survivors", "attackers", "nonfinite_candidates", "upload_bytes", "download_bytes",
    "collapsed_to_majority", "task_refreshed", "refresh_bb_examples", "refresh_seconds",
    "nodes_missing", "task_metric_name"})
LOOP_ROW_PREFIXES = ("test_", "dp_", "fed_test_")
# The federated evaluation's columns the summary keeps, as ``final_<name>``.
FEDERATED_SUMMARY_COLUMNS = (
    "fed_test_accuracy", "fed_test_loss", "fed_test_macro_f1", "fed_test_per_class_recall",
    "fed_test_examples", "fed_test_clients", "fed_test_client_accuracy_min",
    "fed_test_client_accuracy_mean", "fed_test_client_accuracy_max",
    "fed_test_client_accuracy_std")


def json_value(value: Any) -> Any:
  """A metric as JSON: a bool, int or float for a scalar (by its dtype), else a list."""
  a = np.asarray(value)
  if a.ndim:
    return a.tolist()
  if a.dtype.kind == "b":
    return bool(a)
  if a.dtype.kind in "iu":
    return int(a)
  return float(a)


def round_metric_columns(metrics: Mapping[str, Any]) -> dict[str, Any]:
  """The row columns of a round's ``metrics``: every entry but ``LOOP_READ_METRICS``,
  nested dicts flattened (their own keys), values as JSON (``json_value``)."""
  columns: dict[str, Any] = {}
  for name, value in metrics.items():
    if name in LOOP_READ_METRICS:
      continue
    if isinstance(value, Mapping):
      columns.update({k: json_value(v) for k, v in value.items()})
    else:
      columns[name] = json_value(value)
  return columns


def final_metric_fields(last_row: Mapping[str, Any], meter_counters: Iterable[str]
                        ) -> dict[str, Any]:
  """``{final_<name>: value}`` of the last row's round-metric columns (those the loop
  does not write itself, see ``LOOP_ROW_COLUMNS``)."""
  loop_owned = LOOP_ROW_COLUMNS | set(meter_counters)
  return {f"final_{name}": value for name, value in last_row.items()
          if name not in loop_owned and not name.startswith(LOOP_ROW_PREFIXES)}


def federated_summary_fields(rows: list[Mapping[str, Any]], evaluation: str) -> dict[str, Any]:
  """The summary's federated-evaluation fields: ``evaluation`` (``train.evaluation``)
  and, from the last row the clients tested, ``final_<column>`` of
  ``FEDERATED_SUMMARY_COLUMNS`` and ``best_fed_test_accuracy``; nothing for
  ``'central'`` (the summary is then as it always was)."""
  if evaluation == "central":
    return {}
  tested = [r for r in rows if "fed_test_accuracy" in r]
  out: dict[str, Any] = {"evaluation": evaluation}
  if tested:
    out.update({f"final_{k}": tested[-1][k] for k in FEDERATED_SUMMARY_COLUMNS})
    out["best_fed_test_accuracy"] = max(r["fed_test_accuracy"] for r in tested)
  return out
