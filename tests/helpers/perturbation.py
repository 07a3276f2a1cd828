"""The perturbed learning mode: learning tests run as another CPU would run them.

A learning test must assert an effect that is large against its own noise, so that
it holds on any machine. ``FEDBBPT_TEST_PERTURB=1`` (``make test-extended``) checks
that: every learning test then perturbs its runs

* the initial prompt parameters by relative noise of ``INIT_NOISE``
  (``config.train.init_noise``): what another CPU's float rounding does to a run after
  its first few operations, which a zero-order run then amplifies into another
  trajectory;
* and its seeds by ``SEED_OFFSET`` (other directions, minibatches and cohorts: a
  fresh sample of the run-to-run noise the threshold was derived from).

Example:
    >>> configs = [perturbed(smoke(seed=s)) for s in learning_seeds(range(6))]
"""

import os

import ml_collections

INIT_NOISE = 1e-6
SEED_OFFSET = 1000
ACTIVE = os.environ.get("FEDBBPT_TEST_PERTURB", "") not in ("", "0")


def learning_seeds(seeds) -> tuple[int, ...]:
  """The seeds a learning test runs: ``seeds``, shifted by ``SEED_OFFSET`` when perturbed."""
  return tuple(int(s) + (SEED_OFFSET if ACTIVE else 0) for s in seeds)


def perturbed(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` with ``train.init_noise = INIT_NOISE`` when perturbed (unchanged otherwise)."""
  if ACTIVE:
    config.train.init_noise = INIT_NOISE
  return config


def t_statistic(gains) -> float:
  """Mean of the per-seed gains over its standard error (``sd / sqrt(n)``, ddof 1)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  g = np.asarray(gains, np.float64)
  return float(g.mean() / (g.std(ddof=1) / np.sqrt(len(g))))
