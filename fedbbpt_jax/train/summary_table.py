"""Formats a run's summary as the short table the demo prints."""

from __future__ import annotations

from typing import Any


def _pct(v: float | None) -> str:
  return "n/a" if v is None else f"{100 * v:.2f}%"


def format_summary(summary: dict[str, Any], workdir: str) -> str:
  """Returns a plain-text table of the headline figures of ``summary``."""
  rows = [
      ("zero-shot accuracy", _pct(summary.get("zero_shot_accuracy"))),
      ("local-only accuracy (mean over clients)", _pct(summary.get("local_only_accuracy"))),
      ("local-only accuracy (worst client)", _pct(summary.get("local_only_worst_accuracy"))),
      ("Fed-BBPT accuracy (global generator)", _pct(summary.get("final_accuracy"))),
      ("rounds", str(summary["rounds"])),
      ("clients (per round)", f"{summary['num_clients']} ({summary['cohort_size']})"),
      ("black-box queries, Fed-BBPT training", f"{summary['black_box_queries']:,} examples"),
      ("prompt parameters", str(summary["prompt_parameters"])),
      ("wall time", f"{summary['wall_seconds']:.1f} s"),
  ]
  width = max(len(k) for k, _ in rows)
  lines = [f"Test set: {summary['test_split']}", "-" * (width + 16)]
  lines += [f"{k:<{width}}  {v}" for k, v in rows]
  lines += ["-" * (width + 16), f"summary: {workdir}/summary.json, plot: {workdir}/accuracy.png"]
  return "\n".join(lines)
