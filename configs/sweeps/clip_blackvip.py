"""BlackVIP's image suite, federated: 14 benchmarks x 3 seeds x the methods of the paper.

    python -m experiments.sweep --sweep=configs/sweeps/clip_blackvip.py --workdir=/runs/clip
    python -m experiments.sweep --sweep=configs/sweeps/clip_blackvip.py --workdir=/runs/clip \\
        --only=oxford_pets_                   # one benchmark
    python -m experiments.report /runs/clip --out=/runs/clip

Every point is ``configs/clip_blackvip.py:<benchmark>`` (CLIP ViT-B/16 black box, BlackVIP's
coordinator on the MAE ViT-B/16 encoder, SPSA-GC with BlackVIP's per-dataset settings,
CoOp's 16-shot split, 5 clients). Rows of the report:

* **zero-shot** CLIP and **local-only** (every client trains alone, as many queries): not
  separate runs, the Fed-BBPT run computes both on its data and seed
  (``baselines.zero_shot``, ``baselines.local_only``) and the report reads its summary;
* **BlackVIP (centralized)**: ``server.algorithm='centralized'``, the pooled 16-shot set
  trained by one chain of ``C x K`` steps per round with BlackVIP's own step-size clock
  (``server.pooled_clock='global'``: every pooled step ticks, as BlackVIP's ``self.step``);
* **Fed-BBPT**: ``server.algorithm='fedbbpt'``, all 5 clients every round;
* **FedOne**: one client per round, for ``5 x`` the rounds.

**Equal training queries.** Within a benchmark every trained method spends BlackVIP's
black-box examples (``clip_blackvip.schedule``): Fed-BBPT runs C clients x K local steps
for R rounds; centralized C x K pooled steps for R rounds; FedOne one client's K steps for
C x R rounds; local-only C clients alone for R rounds.

**Seeds** are CoOp's 1, 2, 3, each drawing its own 16-shot set (``data.shots_seed``) and
its own ZO randomness (``seed``); the client partition (``data.partition_seed``) stays 0.
Points of different seeds read different images, so each runs as its own program.
"""

from typing import Any

from configs import clip_blackvip

SEEDS = (1, 2, 3)
NUM_CLIENTS = clip_blackvip.NUM_CLIENTS
# Baselines only where they are read: the other runs switch them off (they cost queries).
NO_BASELINES = {"baselines.zero_shot": False, "baselines.local_only": False}


def algorithms(rounds: int, eval_every: int) -> dict[str, dict[str, Any]]:
  """The trained methods of one benchmark whose Fed-BBPT run has ``rounds`` rounds."""
  return {
      "fedbbpt": {"server.algorithm": "fedbbpt", "baselines.zero_shot": True,
                  "baselines.local_only": True},
      "blackvip_centralized": {**NO_BASELINES, "server.algorithm": "centralized",
                               "server.pooled_clock": "global"},
      "fedone": {**NO_BASELINES, "server.algorithm": "fedone",
                 "train.rounds": NUM_CLIENTS * rounds,
                 "train.eval_every": NUM_CLIENTS * eval_every},
  }


def get_sweep() -> list[dict[str, Any]]:
  """Returns 126 points: 14 benchmarks x {Fed-BBPT (+ zero-shot, local-only), BlackVIP
  centralized, FedOne} x seeds 1, 2, 3."""
  points = []
  for benchmark in clip_blackvip.BENCHMARKS:
    config = clip_blackvip.get_config(benchmark)
    for method, overrides in algorithms(config.train.rounds, config.train.eval_every).items():
      for seed in SEEDS:
        points.append({"config": f"configs/clip_blackvip.py:{benchmark}",
                       "overrides": {**overrides, "seed": seed, "data.shots_seed": seed},
                       "name": f"{benchmark}_{method}_s{seed}"})
  return points
