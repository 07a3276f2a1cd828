"""Cross-device Fed-BBPT with client-level DP: 1,000 Fashion-MNIST clients, Poisson cohorts.

The 60,000 training images are split over 1,000 clients (about 60 each, Dirichlet label
skew); every round each client joins independently with probability ``q = 100 / 1,000``
(``server.sampling='poisson'``, the sampling the accountant assumes), so about 100 run a
round. Their members run in vmapped chunks (``parallel.cohort_chunk``) and the empty
slots of the cohort's static capacity run nothing. DP-FedAvg (``dp_gaussian``): the
clipped sum plus noise divided by the expected cohort (100); the noise multiplier is
calibrated so that ε after ``train.rounds`` is ``server.dp.target_epsilon`` at
``δ = 1 / N^1.1`` (5.0e-4). The local step is the cheapest that learns: one zero-order
step on 16 examples, a frame prompt, the label mapping frozen after set-up::

    python -m experiments.train --config=configs/fmnist_cross_device.py --workdir=/tmp/xd
    python -m experiments.train --config=configs/fmnist_cross_device.py:cohort200 ...
    python -m experiments.train --config=configs/fmnist_cross_device.py:nodp ...
    python -m experiments.train --config=configs/fmnist_cross_device.py \\
        --config.server.dp.target_epsilon=2 --workdir=/tmp/xd_eps2

Modes: ``cohort200`` / ``cohort400`` (expected cohorts of 200 / 400), ``nodp`` (the same
Poisson cohorts, plain FedAvg); combine with a '+': ``cohort200+nodp``.
"""

import ml_collections

from configs import common, fmnist_effnet

NUM_CLIENTS = 1000
COHORTS = {"": 100, "cohort200": 200, "cohort400": 400}


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """Returns the config of ``mode`` (module docstring)."""
  parts = set(filter(None, mode.split("+")))
  unknown = parts - set(COHORTS) - {"nodp"}
  cohorts = parts & set(COHORTS)
  if unknown or len(cohorts) > 1:
    raise ValueError(f"unknown config mode {mode!r} for configs/fmnist_cross_device.py; use '', "
                     "'cohort200', 'cohort400', 'nodp' or a cohort and 'nodp' joined by '+'")
  c = fmnist_effnet.get_config()
  c.data.update(common.partition(num_clients=NUM_CLIENTS, partition="dirichlet",
                                 dirichlet_alpha=0.5, test_examples=2000))
  c.task.mapping_examples_per_client = 10  # set-up: 10,000 images over 1,000 clients
  c.task.sources_per_label = 20
  c.task.remap_every = 0                 # frozen mapping (a re-mapping is not privatised)
  c.client.local_steps = 1
  c.client.batch_size = 16
  c.client.schedule = "round"
  c.server = common.server(cohort_size=COHORTS[next(iter(cohorts), "")], sampling="poisson",
                           aggregator="weighted_mean" if "nodp" in parts else "dp_gaussian")
  if "nodp" not in parts:
    c.server.dp = common.dp(clip_norm=1.0, noise_multiplier=-1.0,  # calibrated to the target
                            delta=NUM_CLIENTS ** -1.1, sampling="poisson", target_epsilon=4.0)
  c.train = common.train(rounds=200, eval_every=20, eval_batch_size=500)
  c.baselines = common.baselines(local_only=False)  # 1,000 clients alone: not a baseline here
  c.parallel = common.parallel(cohort_chunk=0)
  return c
