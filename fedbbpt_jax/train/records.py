"""The workdir's plain-text records: config.json, metrics.jsonl, summary.json, baselines."""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from fedbbpt_jax.federated.privacy import calibrates


def _write_atomic(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json(path: str, obj: Any) -> None:
  _write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


# Fields a resumed run may change: extending a finished run by more rounds is allowed.
# May change between a run and its resumption: more rounds, a raised budget, and how
# the black box is reached (a service on a new port or key, other retry settings).
RESUMABLE_FIELDS = ("train.rounds", "blackbox.budget_examples", "blackbox.url",
                    "blackbox.api_key_env", "blackbox.max_attempts", "blackbox.backoff_seconds",
                    "blackbox.timeout_seconds", "blackbox.max_concurrency")


def resumable_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """``RESUMABLE_FIELDS``, less ``train.rounds`` when DP calibrates its noise to it
  (``server.dp.noise_multiplier=-1``: more rounds would change the noise of every round)."""
  if calibrates(config):
    return tuple(f for f in RESUMABLE_FIELDS if f != "train.rounds")
  return RESUMABLE_FIELDS


def check_or_write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes ``config.json``; if one exists, requires the same config (resume safety).

  Only ``resumable_fields(config)`` may differ (the file is then rewritten).

  Raises:
    ValueError: naming the fields that differ from the workdir's config.
  """
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json())
  if os.path.exists(path):
    old = _flatten(read_json(path))
    new = _flatten(current)
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
             for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k) and k not in resumable_fields(config)]
    if diffs:
      raise ValueError(f"workdir {workdir} holds a run with a different config "
                       f"({'; '.join(diffs)}); use a new --workdir or the same config")
  write_json(path, current)


class MetricsLog:
  """``metrics.jsonl``: one JSON object per completed round."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")

  def rows(self) -> list[dict]:
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate(self, last_round: int) -> None:
    """Drops rows of rounds after ``last_round`` (written before a crash, not checkpointed)."""
    kept = [r for r in self.rows() if r["round"] <= last_round]
    _write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

  def append(self, row: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
      f.flush()
      os.fsync(f.fileno())
