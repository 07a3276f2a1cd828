"""Client-level differential privacy: the ``server.dp`` settings and their accountant.

DP-FedAvg (McMahan et al., ICLR 2018) releases, every round, the sum of the cohort's
clipped updates plus Gaussian noise of std ``z * S`` (``dp_aggregator.dp_gaussian``).
The privacy it buys is a pure function of the config and the number of rounds done,
computed here with Google's ``dp_accounting`` library:

* ``sampling='poisson'``: every client joins a round independently with probability
  ``q = cohort_size / num_clients`` (``PoissonSampledDpEvent``); adjacency: one client
  added or removed (its whole data); the clipped sum moves by at most ``S``, so the
  Gaussian's noise multiplier is ``z``.
* ``sampling='fixed'``: a uniformly random cohort of exactly ``cohort_size`` of the
  ``num_clients`` (``SampledWithoutReplacementDpEvent``). Its analysis needs the
  replace-one adjacency (one client's data replaced by anything, ``num_clients``
  public), under which the clipped
  sum moves by up to ``2 S``: the event's Gaussian has noise multiplier ``z / 2``.
  Only the RDP accountant supports it; 'pld' + 'fixed' is refused at config load.

The simulation samples the way the accountant assumes: ``server.sampling=''`` (default)
follows ``server.dp.sampling`` under DP, and any other value must equal it
(``federated.algorithms.poisson``: Poisson cohorts of variable size;
``server.sample_cohort``: fixed ones).

``T`` rounds are ``SelfComposedDpEvent(event, T)``; ``epsilon`` gives the ε at
``server.dp.delta``. ``calibrate_noise_multiplier`` bisects the smallest ``z`` whose ε
after ``T`` rounds is at most a target (``server.dp.noise_multiplier=-1`` uses it over
``train.rounds``). ``rounds_within_target`` is the last round the loop may run under
``server.dp.target_epsilon``.

Example:
    >>> epsilon(1.0, rounds=8, delta=1e-5, cohort_size=1, num_clients=5)  # rdp, poisson
    5.316...
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import TYPE_CHECKING, Any

from fedbbpt_jax.core import ConfigError, check_choice, check_number, get_field

DP_AGGREGATOR = "dp_gaussian"     # the server.aggregator that turns DP on
# The server.dp fields and their defaults (configs/common.py dp()); dp_gaussian reads them,
# and a run without DP refuses them when set (``core.fields.refuse_unread``).
DP_DEFAULTS = {"clip_norm": 1.0, "noise_multiplier": 1.0, "delta": 1e-5, "accountant": "rdp",
               "sampling": "poisson", "target_epsilon": 0.0}
ACCOUNTANTS = ("rdp", "pld")
SAMPLINGS = ("poisson", "fixed")
CALIBRATE = -1.0                  # server.dp.noise_multiplier: calibrate to target_epsilon
CALIBRATION_RTOL = 1e-3           # relative width of the final bisection bracket on z
Z_MAX = 1e4                       # calibration gives up above this noise multiplier

# dp_accounting (and the SciPy it loads: seconds of start-up) is imported where it is
# used, so that a process that never accounts for privacy (e.g. a deployed node's
# process per message, or a CLI run without DP) does not pay for it.
if TYPE_CHECKING:
  import dp_accounting


class _QuietRdpOrders(logging.Filter):
  """Drops dp_accounting's warning that an RDP order did not converge.

  The RDP accountant then leaves that (small fractional) order out of the minimum over
  orders, which only loosens the bound; a calibration's bisection would otherwise log
  the same warning dozens of times.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return "failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietRdpOrders())


@dataclasses.dataclass(frozen=True)
class DpSettings:
  """A run's DP parameters (``server.dp`` with the cohort resolved).

  Attributes:
    clip_norm: S, the bound on each client's update (global L2 norm over the pytree).
    noise_multiplier: z (resolved: never the calibration marker -1).
    delta: δ of the reported (ε, δ).
    accountant: 'rdp' | 'pld'.
    sampling: 'poisson' | 'fixed'.
    target_epsilon: stop before a round that would exceed it (0 = no target).
    cohort_size: clients per round (the expected cohort: the fixed denominator).
    num_clients: the population the cohort is drawn from.
  """

  clip_norm: float
  noise_multiplier: float
  delta: float
  accountant: str
  sampling: str
  target_epsilon: float
  cohort_size: int
  num_clients: int

  def epsilon(self, rounds: int) -> float:
    """ε after ``rounds`` rounds."""
    return epsilon(self.noise_multiplier, rounds, self.delta, self.cohort_size,
                   self.num_clients, self.sampling, self.accountant)

  def summary_fields(self, rounds: int) -> dict[str, Any]:
    """The ``summary.json`` entries of a run that has done ``rounds`` rounds."""
    return {"dp_epsilon": self.epsilon(rounds), "dp_delta": self.delta,
            "dp_noise_multiplier": self.noise_multiplier, "dp_clip_norm": self.clip_norm,
            "dp_accountant": self.accountant, "dp_sampling": self.sampling,
            "dp_target_epsilon": self.target_epsilon}


def dp_event(noise_multiplier: float, rounds: int, cohort_size: int, num_clients: int,
             sampling: str = "poisson") -> dp_accounting.DpEvent:
  """The ``DpEvent`` of ``rounds`` rounds of DP-FedAvg (see the module docstring)."""
  import dp_accounting  # pylint: disable=import-outside-toplevel
  if sampling == "poisson":
    one = dp_accounting.PoissonSampledDpEvent(
        cohort_size / num_clients, dp_accounting.GaussianDpEvent(noise_multiplier))
  elif sampling == "fixed":  # replace-one adjacency: sensitivity 2 S, multiplier z / 2
    one = dp_accounting.SampledWithoutReplacementDpEvent(
        num_clients, cohort_size, dp_accounting.GaussianDpEvent(noise_multiplier / 2))
  else:
    raise ValueError(f"sampling={sampling!r} is not one of {list(SAMPLINGS)}")
  return dp_accounting.SelfComposedDpEvent(one, rounds)


def neighboring_relation(sampling: str) -> dp_accounting.NeighboringRelation:
  """The adjacency each sampling is analysed under (add/remove-one | replace-one)."""
  import dp_accounting  # pylint: disable=import-outside-toplevel
  rel = dp_accounting.NeighboringRelation
  return rel.REPLACE_ONE if sampling == "fixed" else rel.ADD_OR_REMOVE_ONE


def make_accountant(accountant: str, sampling: str) -> dp_accounting.PrivacyAccountant:
  """A fresh ``dp_accounting`` accountant ('rdp' | 'pld') for ``sampling``."""
  from dp_accounting import pld, rdp  # pylint: disable=import-outside-toplevel
  relation = neighboring_relation(sampling)
  if accountant == "rdp":
    return rdp.RdpAccountant(neighboring_relation=relation)
  if accountant == "pld":
    return pld.PLDAccountant(neighboring_relation=relation)
  raise ValueError(f"accountant={accountant!r} is not one of {list(ACCOUNTANTS)}")


def supports(accountant: str, sampling: str) -> bool:
  """Whether ``accountant`` can account for ``sampling`` (asks the library)."""
  return make_accountant(accountant, sampling).supports(dp_event(1.0, 1, 1, 2, sampling))


@functools.lru_cache(maxsize=4096)
def epsilon(noise_multiplier: float, rounds: int, delta: float, cohort_size: int,
            num_clients: int, sampling: str = "poisson", accountant: str = "rdp") -> float:
  """ε at ``delta`` after ``rounds`` rounds of noise multiplier ``z`` (0 rounds: 0).

  ``z = 0`` (clipping only) gives ``inf``.
  """
  if rounds <= 0:
    return 0.0
  if noise_multiplier <= 0:  # no noise: no privacy (some library paths divide by z)
    return float("inf")
  acc = make_accountant(accountant, sampling)
  acc.compose(dp_event(float(noise_multiplier), int(rounds), int(cohort_size),
                       int(num_clients), sampling))
  return float(acc.get_epsilon(float(delta)))


@functools.lru_cache(maxsize=256)
def calibrate_noise_multiplier(target_epsilon: float, delta: float, rounds: int,
                               cohort_size: int, num_clients: int, sampling: str = "poisson",
                               accountant: str = "rdp",
                               rtol: float = CALIBRATION_RTOL) -> float:
  """The smallest noise multiplier (to ``rtol``) whose ε after ``rounds`` is <= target.

  ε decreases with z, so a bracket ``[lo, hi]`` with ``ε(hi) <= target < ε(lo)`` is
  found by doubling and then bisected until ``hi - lo <= rtol * hi``; ``hi`` is
  returned, so the result always meets the target and is at most ``rtol`` (relative)
  above the exact minimum.

  Raises:
    ValueError: the target is not positive, or not reached below ``Z_MAX``.
  """
  if not target_epsilon > 0:
    raise ValueError(f"target_epsilon={target_epsilon} must be > 0")
  eps = lambda z: epsilon(z, rounds, delta, cohort_size, num_clients, sampling, accountant)
  lo, hi = 0.0, 1.0
  while eps(hi) > target_epsilon:
    lo, hi = hi, 2 * hi
    if hi > Z_MAX:
      raise ValueError(f"no noise multiplier <= {Z_MAX} reaches ε={target_epsilon} at "
                       f"δ={delta} after {rounds} rounds")
  while hi - lo > rtol * hi:
    mid = 0.5 * (lo + hi)
    lo, hi = (lo, mid) if eps(mid) <= target_epsilon else (mid, hi)
  return hi


def rounds_within_target(settings: DpSettings, max_rounds: int) -> int:
  """The most rounds ``t <= max_rounds`` with ε(t) <= target (``max_rounds`` if no target)."""
  if not settings.target_epsilon:
    return int(max_rounds)
  lo, hi = 0, int(max_rounds)  # ε(lo) <= target; find the largest such t (ε grows with t)
  if settings.epsilon(hi) <= settings.target_epsilon:
    return hi
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if settings.epsilon(mid) <= settings.target_epsilon else (lo, mid)
  return lo


def dp_active(config: Any) -> bool:
  """Whether the run is private: ``server.aggregator == 'dp_gaussian'``."""
  return config.server.get("aggregator", "") == DP_AGGREGATOR


def cohort_and_population(config: Any) -> tuple[int, int]:
  """``(cohort_size, num_clients)`` of the config (``server.cohort_size=0``: all clients)."""
  num_clients = int(config.data.num_clients)
  return int(config.server.cohort_size or num_clients), num_clients


def calibrates(config: Any) -> bool:
  """Whether the run calibrates z to ``target_epsilon`` over ``train.rounds`` (z = -1)."""
  return dp_active(config) and float(config.server.dp.noise_multiplier) == CALIBRATE


def dp_settings(config: Any) -> DpSettings | None:
  """The run's ``DpSettings`` (``None`` when DP is off); z = -1 is calibrated here."""
  if not dp_active(config):
    return None
  dp = config.server.dp
  cohort, population = cohort_and_population(config)
  z = float(dp.noise_multiplier)
  if z == CALIBRATE:
    z = calibrate_noise_multiplier(float(dp.target_epsilon), float(dp.delta),
                                   int(config.train.rounds), cohort, population,
                                   dp.sampling, dp.accountant)
  return DpSettings(clip_norm=float(dp.clip_norm), noise_multiplier=z, delta=float(dp.delta),
                    accountant=dp.accountant, sampling=dp.sampling,
                    target_epsilon=float(dp.target_epsilon), cohort_size=cohort,
                    num_clients=population)


def check_dp(config: Any) -> None:
  """Validates ``server.dp`` (when present or DP is on), naming the faulty field.

  Whether the algorithm applies ``dp_gaussian`` at all, and ``server.dp`` fields set in a
  run without DP, are checked with every aggregator (``train/config_check.py``).
  """
  server = get_field(config, "server")
  if "dp" not in server:
    if dp_active(config):
      raise ConfigError(f"config.server.aggregator={DP_AGGREGATOR!r} needs the config.server.dp "
                        "block (configs/common.py: server(dp=dp(...)))")
    return
  check_number(config, "server.dp.clip_norm", low=0, low_inclusive=False)
  z = get_field(config, "server.dp.noise_multiplier")
  check_number(config, "server.dp.noise_multiplier",
               hint=">= 0, or -1 to calibrate it to config.server.dp.target_epsilon")
  if z != CALIBRATE and z < 0:
    raise ConfigError(f"config.server.dp.noise_multiplier={z!r} must be >= 0, or -1 to "
                      "calibrate it to config.server.dp.target_epsilon over train.rounds")
  check_number(config, "server.dp.delta", low=0, high=1, low_inclusive=False,
               high_inclusive=False)
  check_choice(config, "server.dp.accountant", ACCOUNTANTS)
  check_choice(config, "server.dp.sampling", SAMPLINGS)
  check_number(config, "server.dp.target_epsilon", low=0)
  if not dp_active(config):
    return
  accountant, sampling = config.server.dp.accountant, config.server.dp.sampling
  if not supports(accountant, sampling):
    raise ConfigError(f"config.server.dp.accountant={accountant!r} cannot account for "
                      f"config.server.dp.sampling={sampling!r} (dp_accounting has no such "
                      "composition); use accountant 'rdp' or sampling 'poisson'")
  target = float(config.server.dp.target_epsilon)
  if z == CALIBRATE and not target > 0:
    raise ConfigError("config.server.dp.noise_multiplier=-1 calibrates to "
                      "config.server.dp.target_epsilon, which is 0 (none): set a target > 0")
  try:
    settings = dp_settings(config)
  except ValueError as e:
    raise ConfigError(f"config.server.dp.target_epsilon={target!r}: {e}") from e
  if target and not settings.epsilon(1) <= target:
    raise ConfigError(f"config.server.dp.target_epsilon={target!r} is below ε after one round "
                      f"({settings.epsilon(1):.4g} at z={settings.noise_multiplier}, "
                      f"δ={settings.delta}): no round could run; raise the target or "
                      "config.server.dp.noise_multiplier")
