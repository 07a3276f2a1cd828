"""Accuracy against privacy at cross-device scale: 1,000 clients, Poisson cohorts of 100.

    python -m experiments.sweep --sweep=configs/sweeps/dp_cross_device.py \\
        --workdir=/tmp/dp_cross_device --novmap
    python -m experiments.report /tmp/dp_cross_device --out=/tmp/dp_cross_device

``configs/fmnist_cross_device.py`` (1,000 Fashion-MNIST clients, Dirichlet 0.5, each joins
a round with probability 0.1; one SPSA-GC step on 16 examples; frame prompt on the frozen
top-20 frequency mapping) at ``ROUNDS`` rounds: plain FedAvg on the same Poisson cohorts
(``nodp``) and DP-FedAvg with its noise multiplier calibrated so that ε after the last
round is 8, 4 or 2 at δ = 1000^-1.1 (RDP accountant, Poisson sampling, clip norm S = 1.0).
Every point of a seed draws the same cohorts and pays the same black-box queries; only
the server's aggregate differs. A clip-only ablation (``cliponly``: DP-FedAvg's clipped,
unweighted sum over the expected cohort, noise multiplier 0, ε = ∞) separates what the
noise costs from what replacing the example-weighted mean costs.

The clip norm is the config's, set before any run: the clients' update norms measured in
DP rounds average 0.5-0.6, with 7-15% of them clipped at S = 1.0.

``ROUNDS`` is 40 rather than the config's 200 so that the 15 runs fit about an hour on 2
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
  """Returns 15 points: (no DP + 3 ε) x 3 seeds, seed by seed, then the clip-only
  ablation x 3 seeds."""
  points = []
  common = lambda seed: {"seed": seed, "train.rounds": ROUNDS, "train.eval_every": 20}
  for seed in SEEDS:
    points.append({"config": f"{CONFIG}:nodp", "overrides": common(seed),
                   "name": f"nodp_s{seed}"})
    for eps in EPSILONS:
      points.append({"config": CONFIG,
                     "overrides": {**common(seed), "server.dp.target_epsilon": float(eps)},
                     "name": f"eps{eps}_s{seed}"})
  # DP-FedAvg's aggregate without its noise: clipped updates summed and divided by the
  # expected cohort (no example weights). Separates what the noise costs from what the
  # change of aggregate costs.
  for seed in SEEDS:
    points.append({"config": CONFIG,
                   "overrides": {**common(seed), "server.dp.noise_multiplier": 0.0,
                                 "server.dp.target_epsilon": 0.0},
                   "name": f"cliponly_s{seed}"})
  return points
