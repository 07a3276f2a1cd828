"""Baseline comparison: every algorithm on an image task and a text task, 3 seeds.

    python -m experiments.sweep --sweep=configs/sweeps/baselines.py --workdir=/tmp/baselines
    python -m experiments.report /tmp/baselines --out=/tmp/baselines

Rows of the report: zero-shot, local-only, FedOne, FedBPT, Fed-BBPT, centralized (and
the image ablation of centralized's step-size clock, ``server.pooled_clock``).
Zero-shot and local-only are *not* separate runs: every Fed-BBPT run computes both
baselines on the same data, partition and seed (``baselines.zero_shot`` and
``baselines.local_only``), and the report reads them from its ``summary.json``.

**Equal training queries.** Within a task every trained method spends the same
black-box examples: Fed-BBPT runs C clients for R rounds; FedOne activates one
client per round, so it gets C x R rounds; centralized runs C x K steps per round
on the pooled data for R rounds; local-only trains every client alone for R rounds
(C times one client's work, the same total). FedBPT's cost per client-round is
K x lambda + 1 (the final mean's fitness), within 3% of the others.

Tasks:
* image: Fashion-MNIST through the frozen EfficientNet-Lite0 (the demo config at
  5 rounds, 1000 test images, so the label mapping is re-derived from the prompted
  predictions before rounds 3 and 5; each seed's own, inside one vmapped program);
  FedBPT runs CMA-ES with lambda = 4, the candidates per step of SPSA-GC's 2
  two-sided directions.
* text: drug-review conditions through the frozen MiniLM encoder, BDPL discrete
  prompts (cohort = all 5 clients, 2 rounds, batch 8); FedBPT runs on the BBT-style
  soft prompt (``configs/drug_minilm.py:soft``), the prompt space FedBPT itself
  uses; a discrete prompt has no CMA-ES form.

Seeds vary ``config.seed`` (the ZO and client-sampling randomness); the client
partition (``data.partition_seed``) stays fixed, so seeds share the same clients.
"""

from typing import Any

SEEDS = (0, 1, 2)
IMAGE = "configs/fmnist_effnet.py"
TEXT = "configs/drug_minilm.py"
TEXT_SOFT = "configs/drug_minilm.py:soft"
NUM_CLIENTS = 5  # both configs' default

# Image task at small scale: 5 rounds of all 5 clients, 1000 test images.
IMAGE_ROUNDS = 5
IMAGE_SCALE = {"train.rounds": IMAGE_ROUNDS, "data.test_examples": 1000}
IMAGE_ALGORITHMS = {
    "fedbbpt": {"server.algorithm": "fedbbpt", "baselines.zero_shot": True,
                "baselines.local_only": True},
    # One client a round: the label mapping is re-derived after the same queries as the
    # others' (every 2 x 5 one-client rounds).
    "fedone": {"server.algorithm": "fedone", "train.rounds": NUM_CLIENTS * IMAGE_ROUNDS,
               "train.eval_every": NUM_CLIENTS, "task.remap_every": 2 * NUM_CLIENTS},
    "fedbpt": {"server.algorithm": "fedbpt", "zo.estimator": "cma_es", "zo.num_directions": 4},
    "centralized": {"server.algorithm": "centralized", "server.pooled_clock": "client"},
    # Ablation: the pooled chain's step-size clock ticking every pooled step (the schedule
    # of the first sweep, which shrank its steps 5x faster than the clients').
    "centralized_global_clock": {"server.algorithm": "centralized",
                                 "server.pooled_clock": "global"},
}

# Text task at small scale: 2 rounds of all 5 clients, 4 local steps of 8 prompts x 8 reviews.
TEXT_ROUNDS = 2
TEXT_SCALE = {"train.rounds": TEXT_ROUNDS, "train.eval_every": 1, "server.cohort_size": 0,
              "client.batch_size": 8}
TEXT_ALGORITHMS = {
    "fedbbpt": {"server.algorithm": "fedbbpt", "baselines.zero_shot": True,
                "baselines.local_only": True},
    "fedone": {"server.algorithm": "fedone", "train.rounds": NUM_CLIENTS * TEXT_ROUNDS,
               "train.eval_every": NUM_CLIENTS},
    "centralized": {"server.algorithm": "centralized"},
}
TEXT_SOFT_ALGORITHMS = {
    # 4 local CMA-ES generations of lambda = 8 (the soft mode's population): 2 x 5 x (4 x 8 + 1)
    # x 8 = 2,640 examples, 3% over the BDPL methods' 2,560.
    "fedbpt": {"server.algorithm": "fedbpt", "zo.estimator": "cma_es", "client.local_steps": 4},
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
  """Returns 27 points: image x 5 variants x 3 seeds, text x 4 algorithms x 3 seeds."""
  return (_points("image", IMAGE, IMAGE_SCALE, IMAGE_ALGORITHMS)
          + _points("text", TEXT, TEXT_SCALE, TEXT_ALGORITHMS)
          + _points("text", TEXT_SOFT, TEXT_SCALE, TEXT_SOFT_ALGORITHMS))
