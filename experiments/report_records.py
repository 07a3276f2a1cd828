"""Finds the runs below some directories and reads what a report needs from each.

A run is a directory holding ``summary.json`` and ``config.json`` (and usually
``metrics.jsonl``). Its task, method and seed come from its config.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from fedbbpt_jax.train import records
from fedbbpt_jax.train import summary_table

# Config keys that tell seeds of one method apart (not a different method variant).
SEED_KEYS = ("seed",)
# Config keys that may differ between runs of one method without making a new variant.
IGNORED_KEYS = SEED_KEYS + ("baselines.zero_shot", "baselines.local_only",
                            "blackbox.budget_examples", "blackbox.url", "blackbox.api_key_env")


@dataclasses.dataclass
class RunRecord:
  """One run: where it is, its task/method/seed, summary, metrics rows, flat config."""

  workdir: str
  task: str
  method: str
  seed: int
  summary: dict[str, Any]
  rows: list[dict[str, Any]]
  config: dict[str, Any]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """Returns ``d`` with nested dicts as dotted keys."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def task_name(config: dict[str, Any]) -> str:
  """Returns the task label: the dataset, plus the text task (``drug_reviews/condition``)."""
  name = config.get("data.name", "?")
  if config.get("task.family") == "text" and config.get("data.task"):
    name += f"/{config['data.task']}"
  return name


def method_name(config: dict[str, Any], summary: dict[str, Any]) -> str:
  """Returns the display name of the run's algorithm (``Fed-BBPT``, ``DFedSAM (ring)``, ...)."""
  return summary_table.method_name(
      {"algorithm": config.get("server.algorithm", "fedbbpt"), **summary})


def find_runs(dirs: list[str]) -> list[str]:
  """Returns every directory below ``dirs`` (inclusive) with summary.json and config.json."""
  found = []
  for top in dirs:
    for root, subdirs, files in os.walk(top):
      subdirs.sort()
      if "summary.json" in files and "config.json" in files:
        found.append(root)
        subdirs[:] = [d for d in subdirs if d != "checkpoints"]
  return sorted(set(found))


def read_run(workdir: str) -> RunRecord:
  """Returns the ``RunRecord`` of one run directory."""
  summary = records.read_json(os.path.join(workdir, "summary.json"))
  config = flatten(records.read_json(os.path.join(workdir, "config.json")))
  rows = records.MetricsLog(workdir).rows()
  return RunRecord(workdir=workdir, task=task_name(config), method=method_name(config, summary),
                   seed=int(config.get("seed", 0)), summary=summary, rows=rows, config=config)


def label_variants(runs: list[RunRecord]) -> list[RunRecord]:
  """Appends the differing settings to ``method`` where one task/method has several variants.

  Runs of the same task and method that differ in config keys other than the seed
  (and ``IGNORED_KEYS``) are different variants (an ablation): each gets a label such
  as ``Fed-BBPT [client.lr=0.02]`` so that seeds are only averaged within a variant.
  Returns ``runs`` (changed in place).
  """
  groups: dict[tuple[str, str], list[RunRecord]] = {}
  for r in runs:
    groups.setdefault((r.task, r.method), []).append(r)
  for group in groups.values():
    keys = sorted({k for r in group for k in r.config} - set(IGNORED_KEYS))
    varying = [k for k in keys
               if len({json.dumps(r.config.get(k), sort_keys=True) for r in group}) > 1]
    for r in group:
      if varying:
        r.method += " [" + ", ".join(f"{k}={r.config.get(k)}" for k in varying) + "]"
  return runs


def read_runs(dirs: list[str]) -> list[RunRecord]:
  """Returns the labelled records of every run below ``dirs``.

  Raises:
    ValueError: if two runs share task, method variant and seed (they would be
      averaged as if they were different seeds), naming both directories.
  """
  runs = label_variants([read_run(d) for d in find_runs(dirs)])
  seen: dict[tuple[str, str, int], str] = {}
  for r in runs:
    key = (r.task, r.method, r.seed)
    if key in seen:
      raise ValueError(f"runs {seen[key]} and {r.workdir} are both {r.method} on {r.task} with "
                       f"seed {r.seed}; report them separately")
    seen[key] = r.workdir
  return runs
