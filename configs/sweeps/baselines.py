"""Baseline comparison: every algorithm on an image task and a text task, 3 seeds.

    python -m experiments.sweep --sweep=configs/sweeps/baselines.py --workdir=/tmp/baselines
    python -m experiments.report /tmp/baselines --out=/tmp/baselines

Rows of the report: zero-shot, local-only, FedOne, FedBPT, Fed-BBPT, centralized.
Zero-shot and local-only are *not* separate runs: every Fed-BBPT run computes both
baselines on the same data, partition and seed (``baselines.zero_shot`` and
``baselines.local_only``), and the report reads them from its ``summary.json``.

Skipped on purpose (the report says so):
* FedBPT on text: it runs CMA-ES over a continuous prompt; the text track's prompt
  is BDPL's categorical (discrete) prompt, so FedBPT does not apply
  (``config_check_text.TEXT_ALGORITHMS`` = fedbbpt, fedone).
* centralized on text: not wired in ``train/build_text.py`` (same reason list).

Seeds vary ``config.seed`` (the ZO and client-sampling randomness); the client
partition (``data.partition_seed``) stays fixed, so seeds share the same clients.
"""

from typing import Any

SEEDS = (0, 1, 2)
IMAGE = "configs/fmnist_effnet.py"
TEXT = "configs/drug_minilm.py"
# Image task at small scale: few rounds, the default 5 clients of 400 examples.
IMAGE_SCALE = {"train.rounds": 5, "data.test_examples": 1000}
IMAGE_ALGORITHMS = {
    "fedbbpt": {"server.algorithm": "fedbbpt", "baselines.zero_shot": True,
                "baselines.local_only": True},
    "fedone": {"server.algorithm": "fedone"},
    "fedbpt": {"server.algorithm": "fedbpt", "zo.estimator": "cma_es"},
    "centralized": {"server.algorithm": "centralized"},
}
TEXT_ALGORITHMS = {
    "fedbbpt": {"server.algorithm": "fedbbpt", "baselines.zero_shot": True,
                "baselines.local_only": True},
    "fedone": {"server.algorithm": "fedone"},
}
# Baselines only where they are read: the other runs switch them off (they cost queries).
NO_BASELINES = {"baselines.zero_shot": False, "baselines.local_only": False}


def _points(task: str, config: str, scale: dict[str, Any],
            algorithms: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
  """Returns one point per (algorithm, seed) of one task."""
  points = []
  for name, algo in algorithms.items():
    for seed in SEEDS:
      overrides = {**scale, **NO_BASELINES, **algo, "seed": seed}
      points.append({"config": config, "overrides": overrides, "name": f"{task}_{name}_s{seed}"})
  return points


def get_sweep() -> list[dict[str, Any]]:
  """Returns the 18 points: image x 4 algorithms x 3 seeds, text x 2 algorithms x 3 seeds."""
  return (_points("image", IMAGE, IMAGE_SCALE, IMAGE_ALGORITHMS)
          + _points("text", TEXT, {}, TEXT_ALGORITHMS))
