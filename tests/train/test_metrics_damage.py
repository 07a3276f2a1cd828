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


def test_rows_missing_for_saved_rounds_are_named_in_a_warning(tmp_path):
  """A file edited or replaced (not a crash): the rows of saved rounds cannot be written
  again, so the resume names them and goes on from the checkpoint."""
  log = MetricsLog(str(tmp_path))
  rows = [{"round": r, "train_loss": 1.0 / r} for r in (1, 4, 5, 8)]
  with open(log.path, "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows))
  assert log.truncate(7) == [
      f"{log.path}: dropped the row of round 8, written after the last saved round (7); that "
      "round runs again",
      f"{log.path} holds no row for saved rounds 2-3, 6-7: their metrics are lost (the "
      "checkpoints are intact; the run resumes after round 7)"]
  assert log.rows() == rows[:3]
  assert MetricsLog(str(tmp_path)).truncate(5) == [
      f"{log.path} holds no row for saved rounds 2-3: their metrics are lost (the checkpoints "
      "are intact; the run resumes after round 5)"]


def test_a_finished_run_whose_rows_are_gone_says_so_instead_of_a_summary(whole, tmp_path):
  workdir = str(tmp_path / "lost")
  shutil.copytree(whole, workdir)
  os.remove(os.path.join(workdir, "metrics.jsonl"))
  os.remove(os.path.join(workdir, "summary.json"))
  logged = []
  with pytest.raises(MetricsLogDamaged) as e:
    run(config(), workdir, log=logged.append)
  path = os.path.join(workdir, "metrics.jsonl")
  assert str(e.value) == (f"{path} holds no evaluated row (its rows were lost after round 2 "
                          "was saved), so summary.json cannot be written: restore the file, "
                          "or rerun in a new --workdir")
  assert f"warning: {path} holds no row for saved rounds 1-2: their metrics are lost (the " \
         "checkpoints are intact; the run resumes after round 2)" in logged
  assert not os.path.exists(os.path.join(workdir, "summary.json"))
