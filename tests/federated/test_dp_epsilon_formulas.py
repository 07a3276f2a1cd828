"""The DP accountant's ε against formulas computed here in numpy, not by dp_accounting.

* No sampling (``cohort_size == num_clients``: q = 1): T rounds of the Gaussian
  mechanism with noise multiplier z have RDP ``T α / (2 z²)`` at every order α
  (sensitivity 2 S, so z / 2, under 'fixed' sampling's replace-one adjacency). The RDP
  accountant turns RDP into (ε, δ) with the conversion of Canonne-Kamath-Steinke 2020
  (Prop. 12) / Asoodeh et al. 2020: ``ε = min_α r(α) + log(1 - 1/α) - log(δ α) / (α - 1)``,
  never above the classic ``min_α r(α) + log(1/δ) / (α - 1)`` (Mironov 2017, Prop. 3).
  The composition is itself a Gaussian mechanism with ``μ = √T / z``, whose exact δ(ε)
  (Balle & Wang 2018, Thm. 8) the PLD accountant must meet from above.
* Poisson sampling with rate q: the sampled Gaussian's RDP is ``log(A_α) / (α - 1)``
  with ``A_α = E_{x ~ N(0, z²)} [(1 - q + q exp((2x - 1) / (2 z²)))^α]`` (Mironov, Talwar
  & Zhang 2019), computed here by quadrature in log space for every order, and checked
  against the binomial expansion ``Σ_k C(α, k) (1-q)^(α-k) q^k exp((k² - k) / (2 z²))`` at
  integer orders. dp_accounting is exact at integer orders and an upper bound at
  fractional ones, so ε is checked exactly where the best order is an integer, and
  between the exact ε and the integer orders' ε where it is fractional.
"""

import dp_accounting.rdp
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import gammaln, logsumexp
from scipy.stats import norm

from fedbbpt_jax.federated.aggregation.privacy import epsilon

# The orders the RDP accountant minimises over (its default).
ORDERS = np.asarray([1 + x / 10 for x in range(1, 100)] + list(range(11, 64))
                    + [128, 256, 512, 1024], np.float64)
INTEGER = ORDERS == np.round(ORDERS)


def improved_conversion(rdp: np.ndarray, delta: float) -> np.ndarray:
  """ε at every order (Canonne-Kamath-Steinke 2020, Prop. 12)."""
  return rdp + np.log1p(-1 / ORDERS) - (np.log(delta) + np.log(ORDERS)) / (ORDERS - 1)


def classic_conversion(rdp: np.ndarray, delta: float) -> np.ndarray:
  """ε at every order (Mironov 2017, Prop. 3)."""
  return rdp + np.log(1 / delta) / (ORDERS - 1)


def log_a_quadrature(q: float, z: float, alpha: float) -> float:
  """log A_α of the Poisson-sampled Gaussian by the trapezoid rule on a grid of step z/40
  from -15 z to α + 15 z (the integrand's mass lies near 0 and near α)."""
  x = np.linspace(-15 * z, alpha + 15 * z, int((alpha + 30 * z) / (z / 40)) + 1)
  log_ratio = np.logaddexp(np.log1p(-q), np.log(q) + (2 * x - 1) / (2 * z * z))
  log_f = -x * x / (2 * z * z) - np.log(z * np.sqrt(2 * np.pi)) + alpha * log_ratio
  return float(logsumexp(log_f) + np.log(x[1] - x[0]))


def log_a_binomial(q: float, z: float, alpha: int) -> float:
  """log A_α for integer α by the binomial expansion."""
  k = np.arange(alpha + 1)
  log_comb = gammaln(alpha + 1) - gammaln(k + 1) - gammaln(alpha - k + 1)
  return float(logsumexp(log_comb + k * np.log(q) + (alpha - k) * np.log1p(-q)
                         + (k * k - k) / (2 * z * z)))


def test_the_orders_are_the_accountants():
  np.testing.assert_array_equal(ORDERS, dp_accounting.rdp.rdp_privacy_accountant.DEFAULT_RDP_ORDERS)


@pytest.mark.parametrize("z,rounds,delta", [(1.2, 7, 1e-5), (0.8, 3, 1e-6), (3.0, 100, 1e-5)])
def test_unsampled_gaussian_epsilon_is_the_converted_closed_form_rdp(z, rounds, delta):
  for sampling, multiplier in (("poisson", z), ("fixed", z / 2)):
    rdp = rounds * ORDERS / (2 * multiplier ** 2)
    want = max(0.0, improved_conversion(rdp, delta).min())
    got = epsilon(z, rounds, delta, 4, 4, sampling, "rdp")
    assert got == pytest.approx(want, rel=1e-12), sampling
    assert got < classic_conversion(rdp, delta).min(), sampling  # the tighter conversion


@pytest.mark.parametrize("z,rounds,delta", [(1.2, 7, 1e-5), (3.0, 100, 1e-5)])
def test_unsampled_pld_epsilon_meets_the_exact_gaussian_curve_from_above(z, rounds, delta):
  mu = np.sqrt(rounds) / z
  excess = lambda eps: (norm.cdf(-eps / mu + mu / 2) - np.exp(eps) * norm.cdf(-eps / mu - mu / 2)
                        - delta)
  exact = brentq(excess, 0.0, 100.0, xtol=1e-13)
  got = epsilon(z, rounds, delta, 4, 4, "poisson", "pld")
  assert exact <= got <= exact * (1 + 1e-6)


def sampled_epsilons(q: float, z: float, rounds: int, delta: float) -> np.ndarray:
  """ε at every order of T rounds of the Poisson-sampled Gaussian, by quadrature."""
  log_a = np.asarray([log_a_quadrature(q, z, a) for a in ORDERS])
  for k in np.flatnonzero(INTEGER):
    assert log_a[k] == pytest.approx(log_a_binomial(q, z, int(ORDERS[k])), rel=1e-9)
  return improved_conversion(rounds * log_a / (ORDERS - 1), delta)


@pytest.mark.parametrize("cohort,clients,z,rounds,delta", [(2, 50, 2.0, 200, 1e-8),
                                                           (1, 5, 4.0, 20, 1e-10)])
def test_sampled_epsilon_equals_the_quadrature_where_the_best_order_is_an_integer(
    cohort, clients, z, rounds, delta):
  eps = sampled_epsilons(cohort / clients, z, rounds, delta)
  assert INTEGER[np.argmin(eps)]
  got = epsilon(z, rounds, delta, cohort, clients, "poisson", "rdp")
  assert got == pytest.approx(eps.min(), rel=1e-9)


def test_sampled_epsilon_lies_between_the_exact_and_the_integer_orders_bound():
  cohort, clients, z, rounds, delta = 3, 20, 1.2, 7, 1e-5
  eps = sampled_epsilons(cohort / clients, z, rounds, delta)
  assert not INTEGER[np.argmin(eps)]  # fractional orders: dp_accounting bounds A_α above
  got = epsilon(z, rounds, delta, cohort, clients, "poisson", "rdp")
  assert eps.min() <= got <= eps[INTEGER].min() * (1 + 1e-12)
  assert eps[INTEGER].min() / eps.min() < 1.014  # a band 1.3 % wide (ε = 2.952)
