"""The report's privacy part: accuracy against the ε of DP-FedAvg runs, table and plot.

DP runs are those whose ``summary.json`` holds ``dp_epsilon`` (``server.aggregator=
'dp_gaussian'``); per task they are grouped by noise multiplier (one ε each) and clip norm
(a row each in the table, a line per clip norm in the plot), and every
other run of the task that is not DP (the same sweep's "no DP" points) is the
reference row; DP runs with noise multiplier 0 (ε = ∞: the clipped aggregate without its
noise) are a row "clipping only" and a line in the plot. Mean ± std over seeds (ddof 1).
"No-DP gain kept" is what share of the no-DP runs' gain over zero-shot the DP runs keep,
from the means.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.report_plots import slug  # noqa: E402
from experiments.report_records import RunRecord  # noqa: E402
from experiments.report_table import mean_std  # noqa: E402


def dp_groups(runs: list[RunRecord]) -> dict[str, tuple[list[RunRecord], list[list[RunRecord]]]]:
  """Per task with DP runs: ``(no-DP runs, DP runs grouped by (noise multiplier, clip norm),
  ε ascending, then clip norm)``."""
  out = {}
  for task in sorted({r.task for r in runs if r.summary.get("dp_epsilon") is not None}):
    mine = [r for r in runs if r.task == task]
    plain = [r for r in mine if r.summary.get("dp_epsilon") is None]
    by_setting: dict[tuple[float, float], list[RunRecord]] = {}
    for r in mine:
      if r.summary.get("dp_epsilon") is not None:
        by_setting.setdefault((float(r.summary["dp_noise_multiplier"]),
                               float(r.summary["dp_clip_norm"])), []).append(r)
    groups = sorted(by_setting.values(),
                    key=lambda g: (np.mean([r.summary["dp_epsilon"] for r in g]),
                                   g[0].summary["dp_clip_norm"]))
    out[task] = (plain, groups)
  return out


def _pm(values: list, scale: float = 100.0, digits: int = 2) -> str:
  mean, std = mean_std(values)
  if mean is None:
    return "–"
  return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def last_value(run: RunRecord, key: str) -> float | None:
  values = [row[key] for row in run.rows if row.get(key) is not None]
  return float(values[-1]) if values else None


def gain_kept(dp: list[RunRecord], plain: list[RunRecord], zero_shot: list[float]) -> str:
  """The share of the no-DP gain over zero-shot that DP keeps, from the means:
  ``(DP - zero-shot) / (no DP - zero-shot)``; '–' without both references or a gain."""
  if not plain or not zero_shot:
    return "–"
  base = float(np.mean(zero_shot))
  gain = np.mean([r.summary["final_accuracy"] for r in plain]) - base
  if gain <= 0:
    return "–"
  return f"{(np.mean([r.summary['final_accuracy'] for r in dp]) - base) / gain:.0%}"


def privacy_table(runs: list[RunRecord]) -> str:
  """Markdown: per task, accuracy and macro-F1 at every ε and without DP."""
  out = []
  for task, (plain, groups) in dp_groups(runs).items():
    out += [f"### Accuracy against privacy (DP-FedAvg): {task}", "",
            "| setting | ε (δ) | noise multiplier z | clip S | accuracy (%) | macro-F1 | "
            "no-DP gain kept | clipped share, last round |", "|---|---|---|---|---|---|---|---|"]
    zero_shot = [r.summary.get("zero_shot_accuracy") for r in plain
                 if r.summary.get("zero_shot_accuracy") is not None]
    if zero_shot:
      out.append(f"| zero-shot | – | – | – | {_pm(zero_shot)} | – | – | – |")
    if plain:
      out.append(f"| no DP (n={len(plain)}) | ∞ | – | – | "
                 f"{_pm([r.summary['final_accuracy'] for r in plain])} | "
                 f"{_pm([r.summary.get('final_macro_f1') for r in plain], 1.0, 3)} | – | – |")
    for g in groups:
      s = g[0].summary
      eps = np.mean([r.summary["dp_epsilon"] for r in g])
      label = "clipping only, no noise" if not np.isfinite(eps) else "DP"
      out.append(f"| {label} (n={len(g)}) | {eps:.3g} ({s['dp_delta']:g}) | "
                 f"{s['dp_noise_multiplier']:g} | {s['dp_clip_norm']:g} | "
                 f"{_pm([r.summary['final_accuracy'] for r in g])} | "
                 f"{_pm([r.summary.get('final_macro_f1') for r in g], 1.0, 3)} | "
                 f"{gain_kept(g, plain, zero_shot)} | "
                 f"{_pm([last_value(r, 'dp_clipped_fraction') for r in g], 1.0, 2)} |")
    out.append("")
  return "\n".join(out)


def plot_privacy(runs: list[RunRecord], out: str) -> list[str]:
  """Writes ``privacy_<task>.png`` (accuracy against ε, log scale) per task; returns paths."""
  paths = []
  for task, (plain, groups) in dp_groups(runs).items():
    fig, ax = plt.subplots(figsize=(6.5, 4))
    clip_only = [g for g in groups if not np.isfinite(np.mean([r.summary["dp_epsilon"]
                                                               for r in g]))]
    groups = [g for g in groups if g not in clip_only]
    norms = sorted({g[0].summary["dp_clip_norm"] for g in groups}, reverse=True)
    for norm in norms:  # one line per clip norm S
      mine = [g for g in groups if g[0].summary["dp_clip_norm"] == norm]
      eps = [np.mean([r.summary["dp_epsilon"] for r in g]) for g in mine]
      stats = [mean_std([r.summary["final_accuracy"] for r in g]) for g in mine]
      ax.errorbar(eps, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats],
                  marker="o", capsize=3,
                  label=f"DP-FedAvg, S = {norm:g} (mean ± std over seeds)")
    if plain:
      m, s = mean_std([r.summary["final_accuracy"] for r in plain])
      ax.axhline(100 * m, color="tab:green", label="no DP")
      ax.axhspan(100 * (m - s), 100 * (m + s), color="tab:green", alpha=0.15)
    for g in clip_only:  # z = 0: DP's clipped aggregate without its noise (ε = ∞)
      m, _ = mean_std([r.summary["final_accuracy"] for r in g])
      ax.axhline(100 * m, color="tab:purple", ls=":",
                 label=f"clipping only, no noise (S = {g[0].summary['dp_clip_norm']:g})")
    zero_shot = [r.summary.get("zero_shot_accuracy") for r in plain
                 if r.summary.get("zero_shot_accuracy") is not None]
    if zero_shot:
      ax.axhline(100 * float(np.mean(zero_shot)), color="gray", ls="--", label="zero-shot")
    ax.set_xscale("log")
    ax.set_xlabel(f"ε (δ = {groups[0][0].summary['dp_delta']:g}) after the run's rounds")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"{task}: accuracy against client-level ε")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, f"privacy_{slug(task)}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
  return paths
