"""The report table: per (method, task), mean and std over seeds, as CSV and Markdown.

Rows come from two sources. Trained methods (Fed-BBPT, FedOne, FedBPT, centralized)
give their final test accuracy, macro-F1 and training black-box queries. The
zero-shot and local-only rows are not separate runs: they are read from the
baselines each Fed-BBPT run records in its ``summary.json`` (``zero_shot_*``,
``local_only_*``), one value per seed. Standard deviations use ``ddof=1`` (0 for a
single seed).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from typing import Any

import numpy as np

from experiments.report_records import RunRecord

ZERO_SHOT = "zero-shot"
LOCAL_ONLY = "local-only (mean over clients)"
BASELINE_SOURCE = "Fed-BBPT"  # baselines are read from the runs of this method
METHOD_ORDER = (ZERO_SHOT, LOCAL_ONLY, "FedOne", "FedBPT", "Fed-BBPT", "centralized")
CSV_FIELDS = ("method", "task", "seeds", "accuracy_mean", "accuracy_std", "macro_f1_mean",
              "macro_f1_std", "queries_mean", "source", "workdirs")


@dataclasses.dataclass
class Cell:
  """Mean/std over seeds of one method on one task."""

  method: str
  task: str
  seeds: list[int]
  accuracy: list[float]
  macro_f1: list[float | None]
  queries: list[float]
  source: str
  workdirs: list[str]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
  """Returns (mean, sample std with ddof=1, 0 for one value); (None, None) if any is None."""
  if not values or any(v is None for v in values):
    return None, None
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _baseline_cells(runs: list[RunRecord]) -> list[Cell]:
  """Returns the zero-shot and local-only cells read from the Fed-BBPT summaries."""
  cells = []
  by_task: dict[str, list[RunRecord]] = {}
  for r in runs:
    if r.method == BASELINE_SOURCE:
      by_task.setdefault(r.task, []).append(r)
  for task, group in by_task.items():
    zs = [r for r in group if r.summary.get("zero_shot_accuracy") is not None]
    if zs:
      cells.append(Cell(ZERO_SHOT, task, [r.seed for r in zs],
                        [r.summary["zero_shot_accuracy"] for r in zs],
                        [r.summary.get("zero_shot_macro_f1") for r in zs], [0.0] * len(zs),
                        f"{BASELINE_SOURCE} summary.json: zero_shot_*",
                        [r.workdir for r in zs]))
    lo = [r for r in group if r.summary.get("local_only_accuracy") is not None]
    if lo:
      cells.append(Cell(LOCAL_ONLY, task, [r.seed for r in lo],
                        [r.summary["local_only_accuracy"] for r in lo],
                        [r.summary.get("local_only_macro_f1") for r in lo],
                        [r.summary.get("local_only_black_box_queries", 0) for r in lo],
                        f"{BASELINE_SOURCE} summary.json: local_only_*",
                        [r.workdir for r in lo]))
  return cells


def build_cells(runs: list[RunRecord]) -> list[Cell]:
  """Returns one cell per (method, task): trained methods and the two baseline rows."""
  groups: dict[tuple[str, str], list[RunRecord]] = {}
  for r in sorted(runs, key=lambda r: r.seed):
    groups.setdefault((r.method, r.task), []).append(r)
  cells = [Cell(method, task, [r.seed for r in g], [r.summary["final_accuracy"] for r in g],
                [r.summary.get("final_macro_f1") for r in g],
                [r.summary["black_box_queries"] for r in g], "summary.json: final_*",
                [r.workdir for r in g])
           for (method, task), g in groups.items()]
  return cells + _baseline_cells(sorted(runs, key=lambda r: r.seed))


def method_rank(method: str) -> tuple[int, str]:
  """Returns a sort key: the fixed method order, then variants alphabetically."""
  base = method.split(" [")[0]
  return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), method)


def csv_rows(cells: list[Cell]) -> list[dict[str, Any]]:
  """Returns the CSV rows (full-precision numbers; empty where not applicable)."""
  rows = []
  for c in sorted(cells, key=lambda c: (method_rank(c.method), c.task)):
    acc_m, acc_s = mean_std(c.accuracy)
    f1_m, f1_s = mean_std(c.macro_f1)
    rows.append({"method": c.method, "task": c.task, "seeds": " ".join(map(str, c.seeds)),
                 "accuracy_mean": acc_m, "accuracy_std": acc_s,
                 "macro_f1_mean": f1_m, "macro_f1_std": f1_s,
                 "queries_mean": float(np.mean(c.queries)), "source": c.source,
                 "workdirs": " ".join(c.workdirs)})
  return rows


def write_csv(cells: list[Cell], path: str) -> None:
  """Writes ``report.csv``: one row per (method, task), ``repr`` precision floats."""
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in csv_rows(cells):
      writer.writerow({k: "" if v is None else (repr(v) if isinstance(v, float) else v)
                       for k, v in row.items()})


def _pm(mean: float | None, std: float | None, scale: float, digits: int) -> str:
  if mean is None or (isinstance(mean, float) and math.isnan(mean)):
    return "–"
  return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def markdown_tables(cells: list[Cell]) -> str:
  """Returns Markdown: methods as rows, tasks as columns (accuracy, macro-F1, queries)."""
  tasks = sorted({c.task for c in cells})
  methods = sorted({c.method for c in cells}, key=method_rank)
  index = {(c.method, c.task): c for c in cells}
  has_f1 = any(f is not None for c in cells for f in c.macro_f1)

  def table(title: str, fmt) -> list[str]:
    lines = [f"### {title}", "", "| method | " + " | ".join(tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for m in methods:
      lines.append(f"| {m} | " + " | ".join(fmt(index[(m, t)]) if (m, t) in index else "–"
                                             for t in tasks) + " |")
    return lines + [""]

  seeds = lambda c: f" (n={len(c.seeds)})"
  out = table("Final test accuracy (%), mean ± std over seeds",
              lambda c: _pm(*mean_std(c.accuracy), 100, 2) + seeds(c))
  if has_f1:
    out += table("Final test macro-F1, mean ± std over seeds",
                 lambda c: _pm(*mean_std(c.macro_f1), 1, 3))
  out += table("Training black-box queries (examples), mean over seeds",
               lambda c: f"{np.mean(c.queries):,.0f}")
  return "\n".join(out)


def reference_table(cells: list[Cell], references: dict[str, tuple[str, float]]) -> str:
  """Markdown: every method's final accuracy against a reference accuracy of its task
  (``references``: task -> (name, accuracy in [0, 1]), e.g. the strongest unprompted label
  mapping), in points: mean ± std over seeds of (run - reference). Empty without one."""
  stats = {}
  for c in cells:
    if c.task in references and not any(a is None for a in c.accuracy):
      stats[(c.method, c.task)] = mean_std([100 * (a - references[c.task][1])
                                            for a in c.accuracy])
  return reference_markdown(stats, {c.task for c in cells},
                            {c.method for c in cells if c.task in references}, references)


def reference_markdown(stats: dict[tuple[str, str], tuple[float, float]], tasks: set[str],
                       methods: set[str], references: dict[str, tuple[str, float]],
                       title: str = "### Final test accuracy against a reference (points), "
                       "mean ± std over seeds") -> str:
  """The reference table's Markdown from ``stats``: (method, task) -> (mean, std) of the
  per-seed differences in points, one row per method of ``methods``; "–" where a pair has
  none."""
  tasks = sorted(tasks & set(references))
  if not tasks:
    return ""
  methods = sorted(methods, key=method_rank)
  lines = [title, "",
           "| method | " + " | ".join(f"{t} vs {references[t][0]} ({100 * references[t][1]:.2f})"
                                      for t in tasks) + " |", "|---|" + "---|" * len(tasks)]

  def gain(method: str, task: str) -> str:
    if (method, task) not in stats:
      return "–"
    mean, std = stats[(method, task)]
    return f"{mean:+.2f} ± {std:.2f}"

  for m in methods:
    lines.append(f"| {m} | " + " | ".join(gain(m, t) for t in tasks) + " |")
  return "\n".join(lines + [""])


def reference_table_from_csv(path: str, references: dict[str, tuple[str, float]]) -> str:
  """The reference table of an existing report from its ``report.csv`` alone (the runs may be
  gone): mean(run - reference) = mean(run) - reference, and the std over seeds is the
  accuracy's own."""
  stats = {}
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    if row["task"] in references and row["accuracy_mean"] not in ("", "nan"):
      stats[(row["method"], row["task"])] = (
          100 * (float(row["accuracy_mean"]) - references[row["task"]][1]),
          100 * float(row["accuracy_std"] or 0.0))
  return reference_markdown(stats, {r["task"] for r in rows},
                            {r["method"] for r in rows if r["task"] in references},
                            references, title="### Final test accuracy against a reference "
                            "(points), mean ± std over seeds (from report.csv)")


# Decentralized runs' own entries (``summary.json``): (column title, key, scale, digits).
DECENTRALIZED_COLUMNS = (
    ("mean model acc. (%)", "final_accuracy", 100, 2),
    ("own models, mean acc. (%)", "final_client_accuracy_mean", 100, 2),
    ("own models, worst acc. (%)", "final_client_accuracy_worst", 100, 2),
    ("consensus distance", "final_consensus_distance", 1, 4),
    ("spectral gap", "spectral_gap", 1, 3),
)


def decentralized_table(runs: list[RunRecord]) -> str:
  """Markdown: per task, every method whose runs keep one model per client (DFedSAM, ...).

  Mean ± std over seeds of the mean model's accuracy, the clients' own models (mean
  and worst) and the final consensus distance ``(1/N) sum_i ||x_i - x_bar||^2``.
  Empty when no run has per-client models.
  """
  own = [r for r in runs if r.summary.get("final_client_accuracy_mean") is not None]
  if not own:
    return ""
  out = []
  for task in sorted({r.task for r in own}):
    groups: dict[str, list[RunRecord]] = {}
    for r in own:
      if r.task == task:
        groups.setdefault(r.method, []).append(r)
    out += [f"### Decentralized: {task}", "",
            "| method | " + " | ".join(c[0] for c in DECENTRALIZED_COLUMNS) + " |",
            "|---|" + "---|" * len(DECENTRALIZED_COLUMNS)]
    for method in sorted(groups, key=method_rank):
      g = groups[method]
      out.append(f"| {method} (n={len(g)}) | " + " | ".join(
          _pm(*mean_std([r.summary.get(key) for r in g]), scale, digits)
          for _, key, scale, digits in DECENTRALIZED_COLUMNS) + " |")
    out.append("")
  return "\n".join(out)
