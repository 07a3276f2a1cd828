"""Runs every point of a sweep, one after another, then writes the report.

    python -m experiments.sweep --sweep=configs/sweeps/smoke.py --workdir=/tmp/sweep \
        [--only=SUBSTRING]

Each point runs in-process (``fedbbpt_jax.train.run``) into ``WORKDIR/<point name>/``.
Rerunning resumes: a point whose ``summary.json`` exists with all its rounds in
``metrics.jsonl`` is skipped without being built; a partial one continues from its
last complete round. ``WORKDIR/sweep.json`` lists the points and their status
(``pending``, ``running``, ``done``, ``skipped`` (already complete) or ``failed``).
Every override key is checked against its config before the first point runs.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any, Callable

from absl import app, flags, logging

from experiments import report
from experiments.sweep_points import Point, load_sweep
from fedbbpt_jax.train import records, run

_SWEEP = flags.DEFINE_string("sweep", None, "sweep file configs/sweeps/NAME.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "parent directory of the points' workdirs")
_ONLY = flags.DEFINE_string("only", "", "run only points whose name contains this")
_REPORT = flags.DEFINE_bool("report", True, "write report.md/.csv and plots into --workdir")


def is_complete(workdir: str, rounds: int) -> bool:
  """Returns whether ``workdir`` holds a finished run of ``rounds`` rounds."""
  if not os.path.exists(os.path.join(workdir, "summary.json")):
    return False
  rows = records.MetricsLog(workdir).rows()
  return bool(rows) and rows[-1]["round"] >= rounds and records.read_json(
      os.path.join(workdir, "summary.json")).get("rounds") == rounds


def run_point(point: Point, workdir: str, log: Callable[[str], None]) -> dict[str, Any]:
  """Runs (or resumes, or skips) one point; returns its ``sweep.json`` entry."""
  entry = {**point.describe(), "workdir": workdir}
  if is_complete(workdir, point.config.train.rounds):
    return {**entry, "status": "skipped"}
  t0 = time.time()
  try:
    run(point.config, workdir, log=lambda s: log(f"[{point.name}] {s}"))
  except Exception as e:  # pylint: disable=broad-except  # recorded; the sweep goes on
    log(f"[{point.name}] FAILED: {e!r}")
    return {**entry, "status": "failed", "error": repr(e), "traceback": traceback.format_exc(),
            "seconds": time.time() - t0}
  return {**entry, "status": "done", "seconds": time.time() - t0}


def run_sweep(sweep_path: str, workdir: str, only: str = "",
              log: Callable[[str], None] = print) -> list[dict[str, Any]]:
  """Runs the sweep's points into ``workdir``; returns the entries of ``sweep.json``.

  Raises:
    SweepError: before anything runs, on a bad sweep file, key, type or value.
  """
  points = load_sweep(sweep_path, only)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "sweep.json")
  entries = [{**p.describe(), "workdir": os.path.join(workdir, p.name), "status": "pending"}
             for p in points]

  def write() -> None:
    records.write_json(path, {"sweep": sweep_path, "only": only, "points": entries})

  write()
  for i, point in enumerate(points):
    log(f"point {i + 1}/{len(points)}: {point.name}")
    entries[i]["status"] = "running"
    write()
    entries[i] = run_point(point, entries[i]["workdir"], log)
    write()
  return entries


def main(argv: list[str]) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  entries = run_sweep(_SWEEP.value, _WORKDIR.value, _ONLY.value,
                      log=lambda s: print(s, flush=True))
  for e in entries:
    print(f"{e['status']:8s} {e['name']}  {e.get('seconds', 0.0):.1f}s", flush=True)
  if _REPORT.value:
    paths = report.write_report([_WORKDIR.value], _WORKDIR.value)
    print("report: " + ", ".join(paths), flush=True)
  failed = [e["name"] for e in entries if e["status"] == "failed"]
  if failed:
    raise SystemExit(f"{len(failed)} point(s) failed: {failed} (see sweep.json)")


if __name__ == "__main__":
  flags.mark_flags_as_required(["sweep", "workdir"])
  app.run(main)
