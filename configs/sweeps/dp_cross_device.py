"""Accuracy against privacy at cross-device scale: 1,000 clients, Poisson cohorts of 100.

    python -m experiments.sweep --sweep=configs/sweeps/dp_cross_device.py \\
        --workdir=/tmp/dp_cross_device --novmap
    python -m experiments.report_cross_device /tmp/dp_cross_device \\
        --out=docs/privacy_robustness/dp_cross_device

``configs/fmnist_cross_device.py`` (1,000 Fashion-MNIST clients, Dirichlet 0.5, each joins
a round with probability 0.1; one SPSA-GC step on 16 examples; frame prompt on the frozen
top-20 frequency mapping) at ``ROUNDS`` rounds: plain FedAvg on the same Poisson cohorts
(``nodp``) and DP-FedAvg with its noise multiplier calibrated so that ε after the last
round is 8, 4 or 2 at δ = 1000^-1.1 (RDP accountant, Poisson sampling, clip norm S = 1.0).
Every point of a seed draws the same cohorts and pays the same black-box queries; only
the server's aggregate differs.

The clip norm is the config's, set before any run: the clients' update norms measured in
DP rounds average 0.5-0.6, with 7-15% of them clipped at S = 1.0.

``ROUNDS`` is 40 rather than the config's 200 so that the 12 runs fit about an hour on 2
cores (a 100-member round costs 5-8 s); fewer rounds also need less noise for the same ε.
The points run seed by seed, so a sweep stopped early holds whole seeds. Poisson cohorts
do not run in a vmapped sweep: use ``--novmap``.
"""

from typing import Any

CONFIG = "configs/fmnist_cross_device.py"
SEEDS = (0, 1, 2)
EPSILONS = (8, 4, 2)
ROUNDS = 40


def get_sweep() -> list[dict[str, Any]]:
  """Returns 12 points: (no DP + 3 ε) x 3 seeds, seed by seed."""
  points = []
  for seed in SEEDS:
    common = {"seed": seed, "train.rounds": ROUNDS, "train.eval_every": 20}
    points.append({"config": f"{CONFIG}:nodp", "overrides": common, "name": f"nodp_s{seed}"})
    for eps in EPSILONS:
      points.append({"config": CONFIG,
                     "overrides": {**common, "server.dp.target_epsilon": float(eps)},
                     "name": f"eps{eps}_s{seed}"})
  return points
