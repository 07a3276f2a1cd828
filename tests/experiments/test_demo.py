"""The demo, as README promises it: ``make demo``'s command on seeds 0, 1 and 2.

The three runs are the demo's own command line (``python -m experiments.train
--config=configs/fmnist_effnet.py``; Fashion-MNIST, frozen EfficientNet-Lite0, frame
prompt, iterative label mapping), run side by side as subprocesses, with only the
local-only baseline left out (it costs as much as the run and is not asserted here) and
the test set evaluated after the last round only (``train.eval_every=10``; evaluation
does not touch training, so the final accuracy is the demo's own). Seeds 1 and 2 start
once seed 0 has logged its first round, so they read its compiled programs from the run's
compile cache. A slow tier of its own (about 6 CPU-minutes): ``make test-demo`` runs it,
``make test`` leaves it out.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

SEEDS = (0, 1, 2)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _logged_round_one(path):
  with open(path, errors="replace") as f:
    return "round 1/" in f.read()


@pytest.fixture(scope="module")
def demo_summaries(tmp_path_factory):
  root = tmp_path_factory.mktemp("demo")
  procs = []
  for seed in SEEDS:
    if procs:  # seeds 1 and 2 start once seed 0 has compiled its programs (the run's
      deadline = time.monotonic() + 1500  # compile cache serves them the same programs)
      while not _logged_round_one(procs[0][2].name) and procs[0][0].poll() is None:
        assert time.monotonic() < deadline, "seed 0 never finished its first round"
        time.sleep(1.0)
    workdir = root / f"seed{seed}"
    log = open(root / f"seed{seed}.log", "w")
    procs.append((subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "--config=configs/fmnist_effnet.py",
         f"--workdir={workdir}", f"--config.seed={seed}",
         "--config.baselines.local_only=false", "--config.train.eval_every=10"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), workdir, log))
  summaries = []
  for proc, workdir, log in procs:
    code = proc.wait(timeout=1500)
    log.close()
    assert code == 0, open(log.name).read()[-3000:]
    with open(workdir / "summary.json") as f:
      summaries.append(json.load(f))
  return summaries


@pytest.mark.slow
@pytest.mark.demo
def test_the_demo_beats_zero_shot_on_every_seed(demo_summaries):
  """The acceptance the demo's README figures rest on: mean gain at least +3 points and
  every seed positive. Noise: 2,000 test images (sampling SE about 1.1 points of
  accuracy per run) and the seed-to-seed spread of the runs (measured +7.55 / +7.75 /
  +4.25 points on seeds 0 / 1 / 2 over 51.80% zero-shot, std 2.0): the smallest gain is
  3.8 sampling SEs above zero."""
  assert [s["test_examples"] for s in demo_summaries] == [2000] * 3
  gains = np.asarray([s["final_accuracy"] - s["zero_shot_accuracy"] for s in demo_summaries])
  assert gains.mean() >= 0.03, gains
  assert (gains > 0).all(), gains
