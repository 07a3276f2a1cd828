"""The launch command itself: ``python -m experiments.train`` with a config file and overrides."""

import json
import os
import subprocess
import sys
import pytest

pytestmark = pytest.mark.slow  # make test-quick leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train(*args):
  return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600, check=False)


def test_the_cli_runs_a_config_with_overrides_and_prints_the_table(tmp_path):
  workdir = str(tmp_path / "cli")
  out = _train("--config=configs/fmnist_effnet.py:smoke", f"--workdir={workdir}",
               "--config.train.rounds=1", "--config.baselines.local_only=False",
               "--config.data.test_examples=50")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Fed-BBPT accuracy (global generator)" in out.stdout
  assert "round 1/1" in out.stdout
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["rounds"] == 1 and summary["test_examples"] == 50
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["train"]["rounds"] == 1


def test_a_bad_override_exits_with_the_field_named(tmp_path):
  out = _train("--config=configs/fmnist_effnet.py:smoke", f"--workdir={tmp_path / 'bad'}",
               "--config.client.lr=-1.0")
  assert out.returncode != 0
  assert "config.client.lr=-1.0 must be > 0" in out.stderr
  assert not os.path.exists(tmp_path / "bad" / "metrics.jsonl")
