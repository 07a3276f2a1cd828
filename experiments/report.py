"""Writes a sweep report: a methods x tasks table (mean ± std over seeds) and plots.

    python -m experiments.report DIR [DIR ...] [--out=DIR] [--reference=TASK=NAME:ACC ...]
    python -m experiments.report REPORT_DIR --from_csv --reference=TASK=NAME:ACC

Reads every run (``summary.json`` + ``config.json``) below the given directories
and writes ``report.md``, ``report.csv``, ``accuracy_<task>.png`` (accuracy vs
round and vs black-box queries, one line per method, mean over seeds) and
``client_spread.png`` (local-only per-client accuracies) into ``--out`` (default:
the first DIR). Decentralized runs (one model per client) add a table of their
clients' own models and consensus distance, and ``consensus_<task>.png`` (consensus
distance against rounds). DP-FedAvg runs add accuracy against ε (table and
``privacy_<task>.png``). ``--reference=TASK=NAME:ACCURACY`` (repeatable) adds every
method's accuracy against that reference (e.g. the strongest unprompted label mapping of
the task's data). Zero-shot and local-only rows are read from the Fed-BBPT runs'
summaries, not from separate runs.

``--from_csv``: the directory holds an earlier report (``report.md``, ``report.csv``) whose
runs are gone; the reference table is computed from ``report.csv`` (mean and std over seeds
per method) and written at the end of ``report.md``, replacing one written this way before.
"""

from __future__ import annotations

import os

from absl import app, flags

from experiments.report_plots import write_plots
from experiments.report_privacy import plot_privacy, privacy_table
from experiments.report_records import read_runs
from experiments.report_table import (build_cells, decentralized_table, markdown_tables,
                                      reference_table, reference_table_from_csv, write_csv)

_OUT = flags.DEFINE_string("out", None, "output directory (default: the first DIR)")
_REFERENCE = flags.DEFINE_multi_string(
    "reference", [], "TASK=NAME:ACCURACY (accuracy in [0, 1]), e.g. "
    "'fashion_mnist=top-50 mapping:0.5745': adds every method's accuracy against it")
_FROM_CSV = flags.DEFINE_bool(
    "from_csv", False, "add the --reference table to the report.md of DIR from its "
    "report.csv (the runs need not exist)")
CSV_REFERENCE_MARK = "<!-- reference table from report.csv -->"


def parse_references(specs: list[str]) -> dict[str, tuple[str, float]]:
  """``['TASK=NAME:ACCURACY', ...]`` -> ``{task: (name, accuracy)}``; a malformed entry
  raises naming it."""
  out = {}
  for spec in specs:
    task, _, rest = spec.partition("=")
    name, _, value = rest.rpartition(":")
    try:
      accuracy = float(value)
    except ValueError:
      accuracy = -1.0
    if not task or not name or not 0 <= accuracy <= 1:
      raise ValueError(f"--reference={spec!r}: expected TASK=NAME:ACCURACY with an accuracy "
                       "in [0, 1], e.g. 'fashion_mnist=top-50 mapping:0.5745'")
    out[task] = (name, accuracy)
  return out


def report_markdown(dirs: list[str], tables: str, plots: list[str], num_runs: int) -> str:
  """Returns the text of ``report.md``."""
  lines = ["# Sweep report", "", f"{num_runs} runs below: " + ", ".join(dirs), "",
           "Zero-shot and local-only rows are read from the Fed-BBPT runs' `summary.json` "
           "(`zero_shot_*`, `local_only_*`: the baselines each Fed-BBPT run computes on the "
           "same data and seed), not from separate runs. Standard deviations: ddof=1 over "
           "seeds. Queries: training black-box examples (`black_box_queries`; the label "
           "mapping is included, evaluation is not).", "", tables, "## Plots", ""]
  lines += [f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in plots]
  return "\n".join(lines) + "\n"


def write_report(dirs: list[str], out: str | None = None,
                 references: dict[str, tuple[str, float]] | None = None) -> list[str]:
  """Writes report.md, report.csv and the PNG plots; returns the paths written.
  ``references``: task -> (name, accuracy) to compare every method with (``--reference``)."""
  out = out or dirs[0]
  os.makedirs(out, exist_ok=True)
  runs = read_runs(dirs)
  if not runs:
    raise ValueError(f"no runs (summary.json + config.json) below {dirs}")
  cells = build_cells(runs)
  csv_path = os.path.join(out, "report.csv")
  write_csv(cells, csv_path)
  plots = write_plots(runs, out, references) + plot_privacy(runs, out)
  md_path = os.path.join(out, "report.md")
  with open(md_path, "w") as f:
    tables = markdown_tables(cells)
    if references and reference_table(cells, references):
      tables += "\n" + reference_table(cells, references)
    if decentralized_table(runs):
      tables += "\n" + decentralized_table(runs)
    if privacy_table(runs):
      tables += "\n" + privacy_table(runs)
    f.write(report_markdown(dirs, tables, plots, len(runs)))
  return [md_path, csv_path] + plots


def add_reference_from_csv(directory: str, references: dict[str, tuple[str, float]]) -> str:
  """Writes the reference table computed from ``directory/report.csv`` at the end of its
  ``report.md`` (after ``CSV_REFERENCE_MARK``, replacing what an earlier call put there);
  returns the path.

  Raises:
    ValueError: no reference names a task of the report.
  """
  table = reference_table_from_csv(os.path.join(directory, "report.csv"), references)
  if not table:
    raise ValueError(f"no --reference names a task of {directory}/report.csv")
  path = os.path.join(directory, "report.md")
  with open(path) as f:
    text = f.read().split("\n" + CSV_REFERENCE_MARK)[0].rstrip("\n") + "\n"
  with open(path, "w") as f:
    f.write(f"{text}\n{CSV_REFERENCE_MARK}\n\n{table}")
  return path


def main(argv: list[str]) -> None:
  dirs = argv[1:]
  if not dirs:
    raise app.UsageError("give one or more directories holding runs")
  if _FROM_CSV.value:
    for directory in dirs:
      print(add_reference_from_csv(directory, parse_references(_REFERENCE.value)))
    return
  for path in write_report(dirs, _OUT.value, parse_references(_REFERENCE.value)):
    print(path)


if __name__ == "__main__":
  app.run(main)
