"""Report figures: accuracy curves per method (mean over seeds) and per-client spread."""

from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.report_records import RunRecord  # noqa: E402
from experiments.report_table import BASELINE_SOURCE, method_rank  # noqa: E402


def mean_curve(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Returns (rounds, mean training queries, mean accuracy) over the evaluated rounds
  that every run of ``runs`` reached."""
  per_run = [{r["round"]: r for r in run.rows if r.get("test_accuracy") is not None}
             for run in runs]
  rounds = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
  queries = [np.mean([p[k]["bb_examples"] for p in per_run]) for k in rounds]
  accs = [np.mean([p[k]["test_accuracy"] for p in per_run]) for k in rounds]
  return np.asarray(rounds), np.asarray(queries), np.asarray(accs)


def line_color(i: int) -> tuple:
  """The i-th line's colour: 20 distinct ones (the default cycle repeats after 10)."""
  return plt.get_cmap("tab20")(i % 20)


def slug(text: str) -> str:
  """Returns ``text`` as a file-name-safe slug."""
  return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def baseline_zero_shot(runs: list[RunRecord]) -> float | None:
  """Mean zero-shot accuracy of the Fed-BBPT runs (any variant of them), or None."""
  zs = [r.summary["zero_shot_accuracy"] for r in runs
        if r.method.split(" [")[0] == BASELINE_SOURCE  # the method or a labelled variant
        and r.summary.get("zero_shot_accuracy") is not None]
  return float(np.mean(zs)) if zs else None


def plot_task_curves(task: str, runs: list[RunRecord], path: str,
                     reference: tuple[str, float] | None = None) -> None:
  """Writes one figure: accuracy vs round and vs black-box queries, one line per method,
  the Fed-BBPT runs' zero-shot and, if given, a reference ``(name, accuracy)``; the legend
  sits below the two panels (variant labels are long)."""
  by_method: dict[str, list[RunRecord]] = {}
  for r in runs:
    by_method.setdefault(r.method, []).append(r)
  entries = len(by_method) + 1 + (reference is not None)
  legend_height = 0.2 * entries + 0.2
  fig, axes = plt.subplots(1, 2, figsize=(11, 4 + legend_height))
  for i, method in enumerate(sorted(by_method, key=method_rank)):
    group = by_method[method]
    rounds, queries, accs = mean_curve(group)
    style = dict(marker="o", color=line_color(i), label=f"{method} (n={len(group)})")
    axes[0].plot(rounds, 100 * accs, **style)
    axes[1].plot(queries, 100 * accs, **style)
  zero_shot = baseline_zero_shot(runs)
  for ax, xlabel in ((axes[0], "round"), (axes[1], "black-box examples queried (training)")):
    if zero_shot is not None:
      ax.axhline(100 * zero_shot, color="gray", ls="--", label="zero-shot")
    if reference is not None:
      ax.axhline(100 * reference[1], color="black", ls=":",
                 label=f"{reference[0]} ({100 * reference[1]:.2f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%), mean over seeds")
    ax.grid(alpha=0.3)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", fontsize=8, frameon=False)
  fig.suptitle(task)
  fig.tight_layout(rect=(0, legend_height / (4 + legend_height), 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_client_spread(runs: list[RunRecord], path: str) -> bool:
  """Writes a box + strip plot of local-only per-client accuracies, one box per task.

  Returns False (and writes nothing) when no run recorded local-only accuracies.
  """
  data: dict[str, list[float]] = {}
  for r in runs:
    accs = r.summary.get("local_only_client_accuracies")
    if r.method == BASELINE_SOURCE and accs:
      data.setdefault(r.task, []).extend(accs)
  if not data:
    return False
  tasks = sorted(data)
  fig, ax = plt.subplots(figsize=(max(4, 2.5 * len(tasks)), 4))
  ax.boxplot([[100 * a for a in data[t]] for t in tasks], widths=0.5, showfliers=False)
  ax.set_xticks(range(1, len(tasks) + 1), tasks)
  rng = np.random.default_rng(0)
  for i, t in enumerate(tasks, start=1):
    ys = 100 * np.asarray(data[t])
    ax.scatter(i + rng.uniform(-0.12, 0.12, len(ys)), ys, s=14, alpha=0.7, color="tab:blue")
  ax.set_ylabel("local-only test accuracy per client (%)")
  ax.set_title("per-client spread (all clients of all seeds)")
  ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def mean_series(runs: list[RunRecord], key: str) -> tuple[np.ndarray, np.ndarray]:
  """Returns (rounds, mean of ``key`` over ``runs``) over the rounds every run recorded it."""
  per_run = [{r["round"]: r[key] for r in run.rows if r.get(key) is not None} for run in runs]
  rounds = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
  return np.asarray(rounds), np.asarray([np.mean([p[k] for p in per_run]) for k in rounds])


def plot_consensus(task: str, runs: list[RunRecord], path: str) -> bool:
  """Writes consensus distance against rounds (log scale), one line per method (mean over
  seeds). Returns False (and writes nothing) when no run recorded one."""
  by_method: dict[str, list[RunRecord]] = {}
  for r in runs:
    if any("consensus_distance" in row for row in r.rows):
      by_method.setdefault(r.method, []).append(r)
  if not by_method:
    return False
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, method in enumerate(sorted(by_method, key=method_rank)):
    rounds, values = mean_series(by_method[method], "consensus_distance")
    ax.plot(rounds, values, marker="o", ms=3, color=line_color(i),
            label=f"{method} (n={len(by_method[method])})")
  ax.set_yscale("log")
  ax.set_xlabel("round")
  ax.set_ylabel("consensus distance (1/N) sum ||x_i - x_bar||^2")
  ax.grid(alpha=0.3)
  ax.legend(loc="best", fontsize=7)
  ax.set_title(f"{task}: consensus of the clients' models, mean over seeds")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def write_plots(runs: list[RunRecord], out: str,
                references: dict[str, tuple[str, float]] | None = None) -> list[str]:
  """Writes every report figure into ``out``; returns their paths. ``references``: task ->
  (name, accuracy), drawn as a line in that task's accuracy figure."""
  paths = []
  for task in sorted({r.task for r in runs}):
    path = os.path.join(out, f"accuracy_{slug(task)}.png")
    plot_task_curves(task, [r for r in runs if r.task == task], path,
                     (references or {}).get(task))
    paths.append(path)
    path = os.path.join(out, f"consensus_{slug(task)}.png")
    if plot_consensus(task, [r for r in runs if r.task == task], path):
      paths.append(path)
  spread = os.path.join(out, "client_spread.png")
  if plot_client_spread(runs, spread):
    paths.append(spread)
  return paths
