"""The workdir's plain-text records: config.json, metrics.jsonl, summary.json, baselines."""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from fedbbpt_jax.federated.aggregation.privacy import calibrates
from fedbbpt_jax.federated.algorithms.poisson import poisson_cohorts


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
# May change between a run and its resumption: more rounds, a raised budget, how the
# black box is reached (a service on a new port or key, other retry settings), and where
# the rounds still to come are tested (``train.evaluation``: it changes no training; a
# run recorded before the field existed resumes with it).
RESUMABLE_FIELDS = ("train.rounds", "blackbox.budget_examples", "blackbox.url",
                    "blackbox.api_key_env", "blackbox.max_attempts", "blackbox.backoff_seconds",
                    "blackbox.timeout_seconds", "blackbox.max_concurrency", "train.evaluation")


# Fields added to the configs after runs were recorded, with the value that reproduces what
# such a run did: a recorded config that lacks one resumes when the new config holds that
# value (the instruction family's prompt kind and BO block, the image family's
# intrinsic-frame sizes, the text family's vocabulary minimum count: 1 = the pooled counts;
# server.sampling '' = fixed cohorts without DP; a DP run recorded before it sampled fixed
# cohorts whatever server.dp.sampling said, and is refused where '' now means Poisson).
ADDED_FIELDS = {"prompt.kind": "soft_instruction", "prompt.intrinsic_dim": 48, "prompt.rank": 2,
                "bo.initial": 25, "bo.batch": 25, "bo.fit_steps": 100,
                "bo.score_vectors": "clients", "bo.max_points": 1000, "bo.score_noise": 0.0,
                "prompt.vocabulary_min_count": 1, "server.sampling": "",
                "parallel.cohort_chunk": 0}


def resumable_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """``RESUMABLE_FIELDS``, less ``train.rounds`` when DP calibrates its noise to it
  (``server.dp.noise_multiplier=-1``: more rounds would change the noise of every round)."""
  if calibrates(config):
    return tuple(f for f in RESUMABLE_FIELDS if f != "train.rounds")
  return RESUMABLE_FIELDS


def check_or_write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes ``config.json``; if one exists, requires the same config (resume safety).

  Only ``resumable_fields(config)`` may differ, and ``ADDED_FIELDS`` may be absent from
  the recorded config when the new one holds their listed value (the file is then
  rewritten).

  Raises:
    ValueError: naming the fields that differ from the workdir's config.
  """
  path = os.path.join(workdir, "config.json")
  current = json.loads(config.to_json())
  if os.path.exists(path):
    old = _flatten(read_json(path))
    new = _flatten(current)
    added = {k for k, v in ADDED_FIELDS.items() if k not in old and new.get(k) == v}
    if "server.sampling" in added and poisson_cohorts(config):
      raise ValueError(
          f"workdir {workdir} holds a DP run recorded before config.server.sampling: its "
          "rounds drew fixed cohorts while its ε assumed Poisson ones "
          "(config.server.dp.sampling='poisson'); the simulation now draws Poisson cohorts "
          "there, and a resume would mix the two: use a new --workdir")
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
             for k in sorted(set(old) | set(new))
             if old.get(k) != new.get(k) and k not in resumable_fields(config)
             and k not in added]
    if diffs:
      raise ValueError(f"workdir {workdir} holds a run with a different config "
                       f"({'; '.join(diffs)}); use a new --workdir or the same config")
  write_json(path, current)


def _ranges(numbers: list[int]) -> str:
  """``[1, 2, 3, 5]`` -> ``'1-3, 5'``."""
  spans: list[list[int]] = []
  for n in numbers:
    if spans and n == spans[-1][1] + 1:
      spans[-1][1] = n
    else:
      spans.append([n, n])
  return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


class MetricsLogDamaged(ValueError):
  """``metrics.jsonl`` is damaged beyond what a crash leaves: a line other than the last
  is not a JSON row, or no evaluated row is left to summarise (the file was edited,
  replaced or deleted)."""


class MetricsLog:
  """``metrics.jsonl``: one JSON object per completed round, appended in round order.

  A crash (SIGKILL, power loss) can leave two kinds of damage, both repaired by
  ``truncate`` on resume: a last line cut short mid-write (the row of the round after
  the last complete one), and rows of rounds written before the crash but after the
  last checkpoint (the row is appended just before its round's checkpoint is saved).
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")

  def read(self) -> tuple[list[dict], str]:
    """``(complete rows, torn last line)``; the torn line is '' when the file ends cleanly.

    Raises:
      MetricsLogDamaged: a line before the last is not a JSON object (names the file
        and the line number).
    """
    if not os.path.exists(self.path):
      return [], ""
    with open(self.path) as f:
      lines = [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
    rows, torn = [], ""
    for i, (n, line) in enumerate(lines):
      try:
        row = json.loads(line)
        if not isinstance(row, dict) or "round" not in row:
          raise ValueError("not a JSON object with a 'round' entry")
      except ValueError as e:
        if i < len(lines) - 1:
          raise MetricsLogDamaged(
              f"{self.path}: line {n} of {lines[-1][0]} is not a metrics row ({e}); only a "
              "crash's cut-short last line is repaired on resume: restore the file or use a "
              "new --workdir") from None
        torn = line
        break
      rows.append(row)
    return rows, torn

  def rows(self) -> list[dict]:
    """The complete rows (a torn last line, which ``truncate`` drops on resume, is skipped)."""
    return self.read()[0]

  def truncate(self, last_round: int) -> list[str]:
    """Keeps the rows of rounds up to ``last_round``, the last checkpointed round.

    Drops a torn last line and the rows of later rounds (written before a crash, never
    checkpointed: the resumed run writes them again). Rows of saved rounds that are
    missing (the file edited or replaced) cannot be written again: they are named in a
    warning, and the run goes on from its checkpoint.

    Returns:
      One warning per dropped line, and one naming the missing rounds, if any.
    """
    rows, torn = self.read()
    kept = [r for r in rows if r["round"] <= last_round]
    missing = sorted(set(range(1, last_round + 1)) - {r["round"] for r in kept})
    missing_warning = ([f"{self.path} holds no row for saved rounds {_ranges(missing)}: their "
                        "metrics are lost (the checkpoints are intact; the run resumes after "
                        f"round {last_round})"] if missing else [])
    warnings = [f"{self.path}: dropped the row of round {r['round']}, written after the last "
                f"saved round ({last_round}); that round runs again"
                for r in rows if r["round"] > last_round]
    if torn:
      after = rows[-1]["round"] if rows else 0
      warnings.append(f"{self.path}: dropped a cut-short last line (the row of round "
                      f"{after + 1}, {len(torn)} bytes, written when the run stopped); that "
                      "round runs again")
    _write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
    return warnings + missing_warning

  def append(self, row: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
      f.flush()
      os.fsync(f.fileno())
