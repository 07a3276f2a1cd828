"""Formats a run's summary as the short table the demo prints."""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.federated import ALGORITHMS


def _pct(v: float | None) -> str:
  return "n/a" if v is None else f"{100 * v:.2f}%"


def method_name(summary: dict[str, Any]) -> str:
  """Returns the run's display name: the algorithm's own ``method`` entry (a variant
  such as ``DFedSAM-MGS Q=2 (ring)``), else its registered display name (``Fed-BBPT``,
  ...), else the name the summary holds."""
  if summary.get("method"):
    return summary["method"]
  algorithm = summary.get("algorithm", "fedbbpt")
  if algorithm in ALGORITHMS:
    return ALGORITHMS.get(algorithm).display_name or algorithm
  return algorithm


def format_summary(summary: dict[str, Any], workdir: str) -> str:
  """Returns a plain-text table of the headline figures of ``summary``."""
  algorithm = method_name(summary)
  rows = [
      ("zero-shot accuracy", _pct(summary.get("zero_shot_accuracy"))),
      ("local-only accuracy (mean over clients)", _pct(summary.get("local_only_accuracy"))),
      ("local-only accuracy (worst client)", _pct(summary.get("local_only_worst_accuracy"))),
      (f"{algorithm} accuracy (global generator)", _pct(summary.get("final_accuracy"))),
      ("rounds", str(summary["rounds"])),
      ("clients (per round)", f"{summary['num_clients']} ({summary['cohort_size']})"),
      (f"black-box queries, {algorithm} training", f"{summary['black_box_queries']:,} examples"),
      ("prompt parameters", str(summary["prompt_parameters"])),
      ("wall time", f"{summary['wall_seconds']:.1f} s"),
  ]
  if summary.get("final_macro_f1") is not None:  # macro-F1 and the learned prompt (text runs)
    f1 = lambda v: "n/a" if v is None else f"{v:.3f}"
    rows[4:4] = [("zero-shot macro-F1", f1(summary.get("zero_shot_macro_f1"))),
                 (f"{algorithm} macro-F1", f1(summary.get("final_macro_f1")))]
    if summary.get("collapsed_to_majority"):
      rows.insert(6, ("WARNING", "predictions collapsed to one class"))
  if summary.get("final_fed_test_accuracy") is not None:  # train.evaluation: the clients'
    rows[4:4] = [
        (f"{algorithm} accuracy (clients' test splits, pooled)",
         _pct(summary["final_fed_test_accuracy"])),
        ("  per client: worst / mean / best",
         " / ".join(_pct(summary[f"final_fed_test_client_accuracy_{k}"])
                    for k in ("min", "mean", "max")))]
  if "learned_prompt" in summary:
    rows.append(("learned prompt", repr(summary["learned_prompt"])))
  width = max(len(k) for k, _ in rows)
  lines = [f"Test set: {summary['test_split']}", "-" * (width + 16)]
  lines += [f"{k:<{width}}  {v}" for k, v in rows]
  lines += ["-" * (width + 16), f"summary: {workdir}/summary.json, plot: {workdir}/accuracy.png"]
  return "\n".join(lines)
