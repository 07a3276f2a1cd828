"""A corrupted or truncated latest checkpoint: resume falls back to the round before.

The smoke run goes 2 rounds in one go; a copy of its workdir gets round 2's checkpoint
damaged (data files truncated, as a disk-full write would leave them, or its JSON
bookkeeping overwritten), and the rerun must warn naming the round and the file, set the
damaged round aside, resume from round 1 and end bit for bit where the whole run ended.
"""

import glob
import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import NoReadableCheckpoint, RoundCheckpointer
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny


def config():
  return with_overrides(tiny(fmnist_effnet.get_config("smoke")), train__rounds=2,
                        train__eval_every=1, baselines__zero_shot=False,
                        baselines__local_only=False)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("whole"))
  run(config(), workdir, log=lambda s: None)
  return workdir


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def truncate_data_files(round_dir):
  """Every array data file of the round cut to half its size; returns one of them."""
  files = sorted(glob.glob(os.path.join(round_dir, "state", "d", "*")))
  assert files
  for path in files:
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(data[:len(data) // 2])
  return files[0]


def overwrite_meta(round_dir):
  path = os.path.join(round_dir, "meta", "metadata")
  with open(path, "w") as f:
    f.write("garbage")
  return path


@pytest.mark.parametrize("damage", [truncate_data_files, overwrite_meta])
def test_a_damaged_latest_checkpoint_falls_back_to_the_round_before(damage, whole, tmp_path):
  resumed = str(tmp_path / "resumed")
  shutil.copytree(whole, resumed)
  bad_file = damage(os.path.join(resumed, "checkpoints", "2"))
  lines = []
  summary = run(config(), resumed, log=lines.append)
  warnings = [line for line in lines if line.startswith("warning: checkpoint")]
  assert len(warnings) == 1, lines
  set_aside = os.path.join(resumed, "checkpoints_unreadable", "2")
  assert warnings[0].startswith(f"warning: checkpoint of round 2 at "
                                f"{os.path.join(resumed, 'checkpoints', '2')} is unreadable "
                                f"(file {bad_file}): ")
  assert warnings[0].endswith(f"; moved it to {set_aside} and resuming from round 1"), warnings
  assert "resuming after round 1" in lines
  assert os.path.isdir(set_aside)
  # Round 2 ran again from round 1's state: same rows and the same final state, bit for bit.
  for a, b in zip(rows(whole), rows(resumed), strict=True):
    for key in ("round", "train_loss", "test_accuracy", "test_loss", "bb_examples", "cohort"):
      assert a[key] == b[key], (key, a, b)
  s_whole, m_whole = RoundCheckpointer(whole).restore(2)
  s_resumed, m_resumed = RoundCheckpointer(resumed).restore(2)
  assert m_whole["queries"] == m_resumed["queries"]
  for x, y in zip(jax.tree.leaves(s_whole), jax.tree.leaves(s_resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  s_start, _ = RoundCheckpointer(whole).restore(1)
  moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
           for a, b in zip(jax.tree.leaves(s_whole["params"]), jax.tree.leaves(s_start["params"]))]
  assert max(moved) > 0   # round 2 really trained
  with open(os.path.join(whole, "summary.json")) as f:
    assert summary["final_accuracy"] == json.load(f)["final_accuracy"]


def test_no_readable_checkpoint_is_an_error_naming_the_workdir(whole, tmp_path):
  broken = str(tmp_path / "broken")
  shutil.copytree(whole, broken)
  for r in (1, 2):
    overwrite_meta(os.path.join(broken, "checkpoints", str(r)))
  with pytest.raises(NoReadableCheckpoint) as e:
    run(config(), broken, log=lambda s: None)
  message = str(e.value)
  assert message.startswith(f"no readable checkpoint in {broken}: rounds [1, 2] all fail to "
                            f"read (round 2: "), message
  assert "use a new --workdir" in message
  assert RoundCheckpointer(broken).latest_round() == 2   # nothing was moved or deleted
  assert [r["round"] for r in rows(broken)] == [1, 2]
