"""The demo's headline over seeds: ``make demo``'s config with seeds 0, 1 and 2.

    python -m experiments.sweep --sweep=configs/sweeps/demo_seeds.py --workdir=/tmp/demo_seeds
    python -m experiments.report /tmp/demo_seeds --out=/tmp/demo_seeds

Each point is the demo exactly (``configs/fmnist_effnet.py``, every baseline on) but
for ``config.seed``; the three run as one vmapped program. The report gives mean ±
std over the seeds of Fed-BBPT, zero-shot and local-only.
"""

from typing import Any

SEEDS = (0, 1, 2)


def get_sweep() -> list[dict[str, Any]]:
  """Returns 3 points: the demo config with seeds 0, 1, 2."""
  return [{"config": "configs/fmnist_effnet.py", "overrides": {"seed": seed},
           "name": f"demo_s{seed}"} for seed in SEEDS]
