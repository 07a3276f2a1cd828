"""A crash's damage to ``metrics.jsonl``, repaired on resume.

A row is appended (and fsynced) just before its round's checkpoint is saved, so a run
killed at the wrong moment leaves either a last line cut short mid-write or a whole row
of a round that has no checkpoint. The rerun drops it with a warning naming the file and
the round, runs that round again, and ends with the rows an uninterrupted run writes.
Any other unreadable line is an error naming the file and the line.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.records import MetricsLog, MetricsLogDamaged
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

WALL_TIME_FIELDS = ("round_seconds", "wall_seconds")


def config():
  """Two rounds on the tiny image model (the repair does not depend on the network)."""
  return with_overrides(tiny(fmnist_effnet.get_config("smoke")), train__rounds=2,
                        train__eval_every=1, baselines__zero_shot=False,
                        baselines__local_only=False)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("whole"))
  run(config(), workdir, log=lambda s: None)
  return workdir


def lines_of(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return f.readlines()


def without_wall_time(row):
  return {k: v for k, v in row.items() if k not in WALL_TIME_FIELDS}


def crashed_copy(whole, tmp_path, last_line):
  """``whole`` as a crash in round 2 leaves it: no round-2 checkpoint, and metrics.jsonl
  ending in ``last_line(round 2's line)``."""
  workdir = str(tmp_path / "crashed")
  shutil.copytree(whole, workdir)
  shutil.rmtree(os.path.join(workdir, "checkpoints", "2"))
  os.remove(os.path.join(workdir, "summary.json"))
  first, second = lines_of(whole)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    f.write(first + last_line(second))
  return workdir


@pytest.mark.parametrize("damage", ["cut_short_last_line", "row_without_checkpoint"])
def test_a_crashs_last_row_is_dropped_with_a_warning_and_the_round_runs_again(
    damage, whole, tmp_path):
  cut = lambda line: line[:len(line) // 2]
  workdir = crashed_copy(whole, tmp_path, cut if damage == "cut_short_last_line" else str)
  path = os.path.join(workdir, "metrics.jsonl")
  logged = []
  run(config(), workdir, log=logged.append)
  warnings = [line for line in logged if line.startswith("warning:")]
  if damage == "cut_short_last_line":
    torn_bytes = len(cut(lines_of(whole)[1]))
    assert warnings == [f"warning: {path}: dropped a cut-short last line (the row of round 2, "
                        f"{torn_bytes} bytes, written when the run stopped); that round runs "
                        "again"]
  else:
    assert warnings == [f"warning: {path}: dropped the row of round 2, written after the last "
                        "saved round (1); that round runs again"]
  assert "resuming after round 1" in logged
  # The rows an uninterrupted run writes, every field but the wall times.
  got, want = lines_of(workdir), lines_of(whole)
  assert len(got) == len(want) == 2
  for a, b in zip(got, want):
    assert without_wall_time(json.loads(a)) == without_wall_time(json.loads(b))
  s_whole, m_whole = RoundCheckpointer(whole).restore(2)
  s_resumed, m_resumed = RoundCheckpointer(workdir).restore(2)
  assert m_resumed["queries"] == m_whole["queries"]
  for x, y in zip(jax.tree.leaves(s_whole), jax.tree.leaves(s_resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


def test_only_the_last_line_may_be_cut_short(tmp_path):
  log = MetricsLog(str(tmp_path))
  rows = [{"round": 1, "train_loss": 0.5}, {"round": 2, "train_loss": 0.25}]
  text = "".join(json.dumps(r) + "\n" for r in rows)
  with open(log.path, "w") as f:
    f.write(text + '{"round": 3, "train_lo')
  assert log.read() == (rows, '{"round": 3, "train_lo')
  assert log.rows() == rows  # readers of a crashed run (reports, sweeps) skip the cut line
  with open(log.path, "w") as f:
    f.write(json.dumps(rows[0]) + "\n" + '{"round": 2, "tr\n' + json.dumps(rows[1]) + "\n")
  with pytest.raises(MetricsLogDamaged) as e:
    log.truncate(1)
  assert str(e.value).startswith(f"{log.path}: line 2 of 3 is not a metrics row (")
  assert str(e.value).endswith("only a crash's cut-short last line is repaired on resume: "
                               "restore the file or use a new --workdir")
  with open(log.path) as f:
    assert f.read().count("\n") == 3  # nothing rewritten
