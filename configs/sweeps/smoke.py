"""Tiny sweep for tests: the image smoke config x 2 algorithms x 2 seeds.

    python -m experiments.sweep --sweep=configs/sweeps/smoke.py --workdir=/tmp/sweep_smoke
"""

from typing import Any

SEEDS = (0, 1)
ALGORITHMS = ("fedbbpt", "fedone")


def get_sweep() -> list[dict[str, Any]]:
  """Returns 4 points: {fedbbpt, fedone} x seeds 0, 1, two rounds, no local-only baseline."""
  return [{"config": "configs/fmnist_effnet.py:smoke",
           "overrides": {"seed": seed, "server.algorithm": algorithm, "train.rounds": 2,
                         "baselines.local_only": False},
           "name": f"smoke_{algorithm}_s{seed}"}
          for algorithm in ALGORITHMS for seed in SEEDS]
