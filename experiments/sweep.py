"""Runs every point of a sweep, one after another, then writes the report.

    python -m experiments.sweep --sweep=configs/sweeps/smoke.py --workdir=/tmp/sweep \
        [--only=SUBSTRING] [--novmap] [--imports=my_pkg.plugins,...]

Each point runs in-process (``fedbbpt_jax.train.run``) into ``WORKDIR/<point name>/``.
With ``--vmap`` (the default), points whose configs differ only in their seed or
``HParams`` fields (``train.vmapped_sweep.VMAPPABLE_FIELDS``) run together as one
vmapped sweep (one compiled program per round, same records per point as separate
runs); ``sweep.json`` records ``vmap`` and each point's ``group``. If a group fails
(e.g. one member's loss diverges), its points are retried one by one, resuming from
the rounds the group completed (the entry keeps ``vmap_error``).
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

from absl import flags, logging

from experiments import config_cli, report
from experiments.sweep_points import Point, load_sweep
from fedbbpt_jax.train import records, run
from fedbbpt_jax.train.vmapped_sweep import SWEEP_BACKENDS, program_key, run_vmapped

_SWEEP = flags.DEFINE_string("sweep", None, "sweep file configs/sweeps/NAME.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "parent directory of the points' workdirs")
_ONLY = flags.DEFINE_string("only", "", "run only points whose name contains this")
_REPORT = flags.DEFINE_bool("report", True, "write report.md/.csv and plots into --workdir")
_VMAP = flags.DEFINE_bool("vmap", True, "run points that differ only in seed / HParams fields "
                          "as one vmapped sweep (one compiled program)")


def is_complete(workdir: str, rounds: int) -> bool:
  """Returns whether ``workdir`` holds a finished run of ``rounds`` rounds (or one that
  ``server.dp.target_epsilon`` stopped after its last round)."""
  if not os.path.exists(os.path.join(workdir, "summary.json")):
    return False
  rows = records.MetricsLog(workdir).rows()
  summary = records.read_json(os.path.join(workdir, "summary.json"))
  done = rounds if summary.get("dp_stopped_at_round") is None else summary["dp_stopped_at_round"]
  return bool(rows) and rows[-1]["round"] >= done and summary.get("rounds") == rounds


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


def run_group(points: list[Point], workdirs: list[str],
              log: Callable[[str], None]) -> list[dict[str, Any]]:
  """Runs (or resumes) points as one vmapped sweep; returns their ``sweep.json`` entries."""
  names = [p.name for p in points]
  t0 = time.time()
  try:
    run_vmapped([p.config for p in points], workdirs,
                log=lambda s: log(f"[{'+'.join(names)}] {s}"))
  except Exception as e:  # pylint: disable=broad-except  # recorded; retried one by one
    # One member's failure (e.g. a diverging learning rate) must not sink the others:
    # each point is retried as a separate run, resuming what the group completed.
    log(f"[{'+'.join(names)}] vmapped sweep FAILED: {e!r}; running the points one by one")
    return [{**run_point(p, w, log), "vmap_error": repr(e)} for p, w in zip(points, workdirs)]
  seconds = time.time() - t0
  return [{**p.describe(), "workdir": w, "status": "done", "seconds": seconds}
          for p, w in zip(points, workdirs)]


def plan_groups(points: list[Point], workdirs: list[str], vmap: bool) -> list[list[int]]:
  """Indices of points run together, in order of first appearance.

  With ``vmap``, unfinished points whose configs differ only in vmappable fields
  (same ``program_key``, backend ``vmap`` or ``shard``) share a group; every other
  point is a group of its own (points whose task re-derives itself from each one's own
  prompt, e.g. iterative label mapping, are vmapped too: each member keeps its own).
  """
  groups: dict[str, list[int]] = {}
  order: list[list[int]] = []
  for i, (p, w) in enumerate(zip(points, workdirs)):
    if (vmap and p.config.parallel.backend in SWEEP_BACKENDS
        and not is_complete(w, p.config.train.rounds)):
      key = program_key(p.config)
      if key not in groups:
        groups[key] = []
        order.append(groups[key])
      groups[key].append(i)
    else:
      order.append([i])
  return order


def run_sweep(sweep_path: str, workdir: str, only: str = "",
              log: Callable[[str], None] = print, vmap: bool = True) -> list[dict[str, Any]]:
  """Runs the sweep's points into ``workdir``; returns the entries of ``sweep.json``.

  Raises:
    SweepError: before anything runs, on a bad sweep file, key, type or value.
  """
  points = load_sweep(sweep_path, only)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "sweep.json")
  workdirs = [os.path.join(workdir, p.name) for p in points]
  groups = plan_groups(points, workdirs, vmap)
  group_of = {i: g for g in groups for i in g}
  entries = [{**p.describe(), "workdir": w, "status": "pending"}
             for p, w in zip(points, workdirs)]

  def tag(i: int) -> dict[str, Any]:
    g = group_of[i]
    return {"group": [points[j].name for j in g]} if len(g) > 1 else {}

  def write() -> None:
    records.write_json(path, {"sweep": sweep_path, "only": only, "vmap": vmap,
                              "points": [{**e, **tag(i)} for i, e in enumerate(entries)]})

  write()
  for g in groups:
    names = ", ".join(points[i].name for i in g)
    log(f"point{'s' if len(g) > 1 else ''} {g[0] + 1}/{len(points)}: {names}"
        + (f" (one vmapped program for {len(g)} points)" if len(g) > 1 else ""))
    for i in g:
      entries[i]["status"] = "running"
    write()
    if len(g) == 1:
      entries[g[0]] = run_point(points[g[0]], workdirs[g[0]], log)
    else:
      for i, e in zip(g, run_group([points[i] for i in g], [workdirs[i] for i in g], log)):
        entries[i] = e
    write()
  return [{**e, **tag(i)} for i, e in enumerate(entries)]


def main(argv: list[str]) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  entries = run_sweep(_SWEEP.value, _WORKDIR.value, _ONLY.value,
                      log=lambda s: print(s, flush=True), vmap=_VMAP.value)
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
  config_cli.run(main)  # --imports=..., one-line refusals
