"""SIGKILL mid-run, then the same command again: the CLI's resume is bit-exact.

For each track (image: digits; text: drug reviews; each on its family's tiny black box,
selected by the config file ``tests/helpers/tiny_config.py``, since the resume does not
depend on the network) three ``python -m experiments.train`` processes run: an
uninterrupted reference in one workdir, and in another a run killed with SIGKILL as soon
as it has logged round 1 (its checkpoint is saved before that line; the kill lands in
round 2), then the same command again to the end. The second workdir must end as the
first: every checkpoint kept (every leaf, and its query counters), every metrics.jsonl
row and summary.json, all but their wall times.
The killed run starts once the reference has logged round 1 (so that both read the
reference's compiled programs from the run's compile cache) and runs alongside it.
"""

import json
import os
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

from fedbbpt_jax.train.checkpoint import RoundCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WALL_TIME_FIELDS = ("round_seconds", "wall_seconds", "refresh_seconds", "local_only_seconds")
CHEAP = ("--config.baselines.zero_shot=False", "--config.baselines.local_only=False",
         "--config.train.eval_every=1")
TRACKS = {
    # Rounds of ~0.1 s here (evaluation and checkpoint included): 4 rounds leave the kill
    # three rounds to land in.
    "image": (4, ["--config=tests/helpers/tiny_config.py:image", "--config.data.test_examples=50"]),
    "text": (4, ["--config=tests/helpers/tiny_config.py:text"]),
}
TIMEOUT = 600


def command(track, workdir):
  rounds, args = TRACKS[track]
  return [sys.executable, "-m", "experiments.train", *args, *CHEAP,
          f"--config.train.rounds={rounds}", f"--workdir={workdir}"]


@pytest.fixture
def processes():
  """Starts runs; kills any still running when the test ends (a failed test included)."""
  started = []

  def start(track, workdir, log_path, **kwargs):
    with open(log_path, "w") as log:
      proc = subprocess.Popen(command(track, workdir), cwd=ROOT, stderr=log, text=True, **kwargs)
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # a hung run fails the test, not the suite
    watchdog.daemon = True
    watchdog.start()
    started.append((proc, watchdog))
    return proc

  yield start
  for proc, watchdog in started:
    watchdog.cancel()
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def finished(proc, log_path):
  out, _ = proc.communicate(timeout=TIMEOUT)
  with open(log_path) as f:
    assert proc.returncode == 0, f.read()[-3000:]
  return out


def read_until_round_one(proc):
  """The run's stdout lines up to its round-1 line (round 1 is saved then), or all of them."""
  seen = []
  for line in proc.stdout:
    seen.append(line)
    if line.startswith("round 1/"):
      break
  return seen


def kill_after_round_one(proc, log_path):
  """Reads the run's log until its round-1 line (round 1 is saved), then SIGKILLs it."""
  seen = read_until_round_one(proc)
  if seen and seen[-1].startswith("round 1/"):
    proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=TIMEOUT)
  with open(log_path) as f:
    assert proc.returncode == -signal.SIGKILL, "".join(seen) + f.read()[-3000:]
  return seen


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def read_json(workdir, name):
  with open(os.path.join(workdir, name)) as f:
    return json.load(f)


def without_wall_time(record):
  return {k: v for k, v in record.items() if k not in WALL_TIME_FIELDS}


@pytest.mark.slow
@pytest.mark.parametrize("track", sorted(TRACKS))
def test_a_run_killed_mid_round_and_rerun_ends_bit_identical(track, tmp_path, processes):
  rounds = TRACKS[track][0]
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  ref_proc = processes(track, reference, tmp_path / "reference.log", stdout=subprocess.PIPE)
  # Once the reference has run round 1, its programs are compiled and in the run's compile
  # cache: the killed run and its resumption read them from there.
  head = read_until_round_one(ref_proc)
  with open(tmp_path / "reference.log") as log:
    assert head and head[-1].startswith("round 1/"), "".join(head) + log.read()[-3000:]
  victim = processes(track, killed, tmp_path / "killed.log", stdout=subprocess.PIPE)
  kill_after_round_one(victim, tmp_path / "killed.log")

  # What the kill left: round 1 (maybe 2) saved, the run unfinished.
  saved = RoundCheckpointer(killed).latest_round()
  assert saved is not None and 1 <= saved < rounds, saved
  assert not os.path.exists(os.path.join(killed, "summary.json"))

  resumed = processes(track, killed, tmp_path / "resumed.log", stdout=subprocess.PIPE)
  out = finished(resumed, tmp_path / "resumed.log")
  finished(ref_proc, tmp_path / "reference.log")
  assert f"resuming after round {saved}" in out.splitlines()
  assert f"round {rounds}/{rounds}" in out
  # A kill between a row's append and its checkpoint leaves that row (whole or cut
  # short): dropped with a warning naming the file and the round; no other warning.
  metrics = os.path.join(killed, "metrics.jsonl")
  allowed = (f"warning: {metrics}: dropped the row of round {saved + 1}, written after",
             f"warning: {metrics}: dropped a cut-short last line (the row of round {saved + 1},")
  warnings = [line for line in out.splitlines() if line.startswith("warning")]
  assert all(line.startswith(allowed) for line in warnings) and len(warnings) <= 1, warnings

  # Every metrics row and the summary, all but wall times.
  want, got = rows(reference), rows(killed)
  assert [r["round"] for r in got] == list(range(1, rounds + 1))
  for a, b in zip(want, got, strict=True):
    assert without_wall_time(b) == without_wall_time(a), (track, a["round"])
  s_want, s_got = read_json(reference, "summary.json"), read_json(killed, "summary.json")
  assert without_wall_time(s_got) == without_wall_time(s_want)
  assert read_json(killed, "config.json") == read_json(reference, "config.json")
  for name in sorted(os.listdir(reference)):  # set-up files, e.g. the image label mapping
    if name.endswith((".npz", ".json")) and name != "summary.json":
      with open(os.path.join(reference, name), "rb") as a, \
          open(os.path.join(killed, name), "rb") as b:
        assert a.read() == b.read(), name

  # Every checkpoint kept, leaf by leaf (the final parameters included), and its counters.
  ckpt_want, ckpt_got = RoundCheckpointer(reference), RoundCheckpointer(killed)
  assert ckpt_got.rounds() == ckpt_want.rounds() and ckpt_want.rounds()[-1] == rounds
  for r in ckpt_want.rounds():
    (state_want, meta_want), (state_got, meta_got) = ckpt_want.restore(r), ckpt_got.restore(r)
    assert meta_got["queries"] == meta_want["queries"]
    leaves = jax.tree.leaves(state_want)
    assert len(leaves) == len(jax.tree.leaves(state_got)) >= 2
    for x, y in zip(leaves, jax.tree.leaves(state_got), strict=True):
      np.testing.assert_array_equal(np.asarray(y), np.asarray(x), err_msg=f"round {r}")
  first = jax.tree.leaves(ckpt_want.restore(ckpt_want.rounds()[0])[0]["params"])
  last = jax.tree.leaves(ckpt_want.restore(rounds)[0]["params"])
  assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(first, last))
