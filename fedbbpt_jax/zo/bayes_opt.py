"""InstructZero's Bayesian optimisation over the soft prompt (Chen et al., ICML 2024), on tinygp.

The GP's kernel couples the soft-prompt space with the instructions' score vectors::

    k(z, z') = K(z, Z) (K(Z, Z) + 1e-4 I)^-1 K_S(S, S) (K(Z, Z) + 1e-4 I)^-1 K(Z, z')

with ``Z`` the evaluated points, ``S`` their per-example score vectors, ``K`` and
``K_S`` Matern-5/2 kernels with one length scale per dimension (ARD), scaled by an
amplitude; observation noise on the diagonal; ``y`` standardised. Hyper-parameters
(log length scales, log amplitude, log noise) are the MAP estimate under Gamma(3, 6)
priors on the length scales (InstructZero's), found with Adam on tinygp's marginal
likelihood. The acquisition is expected improvement, maximised over random points in
``[-1, 1]^d`` and Gaussian moves around the best points so far (InstructZero runs
pycma from the top points; this is a cheaper stand-in, stated); the batch proposed
per iteration is the top ``batch`` distinct points.

``optimize(evaluate, dim, ...)``: a 25-point scrambled Sobol design (seed 0), then
``iterations`` x ``batch`` proposals; ``evaluate(zs) -> (means, score vectors)``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tinygp
from jax.scipy.stats import gamma, norm
from scipy.stats import qmc
from tinygp import kernels, transforms

JITTER = 1e-4


def matern_ard(log_scales: jnp.ndarray) -> kernels.Kernel:
  """Matern-5/2 on the Euclidean distance (tinygp's default is L1; GPyTorch's, which
  InstructZero uses, is L2) with one length scale per input dimension."""
  return transforms.Linear(jnp.exp(-log_scales),
                           kernels.Matern52(distance=kernels.distance.L2Distance()))


class InstructionCoupledKernel(kernels.Kernel):
  """``k(z, z') = K(z, Z) M K(Z, z')``, ``M = (K_ZZ + jitter)^-1 K_S (K_ZZ + jitter)^-1``."""

  base: kernels.Kernel
  anchors: jnp.ndarray
  coupling: jnp.ndarray

  def evaluate(self, X1: jnp.ndarray, X2: jnp.ndarray) -> jnp.ndarray:
    left = self.base(X1[None], self.anchors)[0]
    right = self.base(self.anchors, X2[None])[:, 0]
    return left @ self.coupling @ right


def coupled_kernel(z_kernel: kernels.Kernel, s_kernel: kernels.Kernel, Z: jnp.ndarray,
                   S: jnp.ndarray) -> InstructionCoupledKernel:
  """The instruction-coupled kernel on evaluated points ``Z`` with score vectors ``S``."""
  kzz = z_kernel(Z, Z) + JITTER * jnp.eye(Z.shape[0])
  inv_kss = jnp.linalg.solve(kzz, s_kernel(S, S))
  coupling = jnp.linalg.solve(kzz, inv_kss.T).T  # (Kzz)^-1 Kss (Kzz)^-1, Kzz symmetric
  return InstructionCoupledKernel(z_kernel, Z, coupling)


@dataclasses.dataclass(frozen=True)
class GPParams:
  log_z_scales: jnp.ndarray
  log_s_scales: jnp.ndarray
  log_amplitude: jnp.ndarray
  log_noise: jnp.ndarray


jax.tree_util.register_dataclass(GPParams, data_fields=["log_z_scales", "log_s_scales",
                                                        "log_amplitude", "log_noise"],
                                 meta_fields=[])


def build_gp(params: GPParams, Z: jnp.ndarray, S: jnp.ndarray) -> tinygp.GaussianProcess:
  kernel = jnp.exp(params.log_amplitude) * coupled_kernel(
      matern_ard(params.log_z_scales), matern_ard(params.log_s_scales), Z, S)
  return tinygp.GaussianProcess(kernel, Z, diag=jnp.exp(params.log_noise) + 1e-6)


def neg_log_posterior(params: GPParams, Z, S, y) -> jnp.ndarray:
  """Negative log marginal likelihood minus the Gamma(3, 6) length-scale log priors."""
  prior = (gamma.logpdf(jnp.exp(params.log_z_scales), 3.0, scale=1 / 6.0).sum()
           + gamma.logpdf(jnp.exp(params.log_s_scales), 3.0, scale=1 / 6.0).sum())
  return -build_gp(params, Z, S).log_probability(y) - prior


def fit_gp(Z: np.ndarray, S: np.ndarray, y: np.ndarray, steps: int = 100,
           learning_rate: float = 0.05) -> GPParams:
  """MAP hyper-parameters for standardised ``y`` (Adam from the priors' modes)."""
  params = GPParams(jnp.full(Z.shape[1], np.log(1 / 3.0)), jnp.full(S.shape[1], np.log(1 / 3.0)),
                    jnp.asarray(0.0), jnp.asarray(np.log(1e-2)))
  return _adam_fit(params, *(jnp.asarray(a, jnp.float32) for a in (Z, S, y)), steps,
                   learning_rate)


@jax.jit(static_argnums=(4, 5))
def _adam_fit(params: GPParams, Z, S, y, steps: int, learning_rate: float) -> GPParams:
  opt = optax.adam(learning_rate)

  def step(carry, _):
    params, state = carry
    grads = jax.grad(neg_log_posterior)(params, Z, S, y)
    updates, state = opt.update(grads, state, params)
    return (optax.apply_updates(params, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
  return params


def expected_improvement(mean: jnp.ndarray, std: jnp.ndarray, best: float) -> jnp.ndarray:
  """EI of a maximisation at posterior ``mean``/``std`` over the incumbent ``best``."""
  std = jnp.maximum(std, 1e-9)
  u = (mean - best) / std
  return std * (u * norm.cdf(u) + norm.pdf(u))


@dataclasses.dataclass
class BOResult:
  """Every evaluated point, its mean score and score vector, in evaluation order."""

  Z: np.ndarray
  y: np.ndarray
  S: np.ndarray

  @property
  def best(self) -> tuple[np.ndarray, float]:
    i = int(np.argmax(self.y))
    return self.Z[i], float(self.y[i])


def sobol_design(num: int, dim: int, seed: int = 0) -> np.ndarray:
  """``num`` scrambled Sobol points in ``[-1, 1]^dim``."""
  return 2.0 * qmc.Sobol(dim, scramble=True, seed=seed).random(num) - 1.0


def propose(result: BOResult, batch: int, rng: np.random.Generator, num_random: int = 2000,
            fit_steps: int = 100) -> np.ndarray:
  """The ``batch`` candidates of highest EI (random points + moves around the top ones)."""
  dim = result.Z.shape[1]
  y = result.y
  spread = y.std()
  y_std = (y - y.mean()) / spread if spread > 0 else y - y.mean()
  params = fit_gp(result.Z, result.S, y_std, steps=fit_steps)
  gp = build_gp(params, jnp.asarray(result.Z, jnp.float32), jnp.asarray(result.S, jnp.float32))
  around = np.repeat(result.Z[np.argsort(-y)[:5]], 100, 0)  # moves around the top 5
  candidates = np.concatenate([
      rng.uniform(-1, 1, (num_random, dim)),
      np.clip(around + 0.1 * rng.standard_normal(around.shape), -1, 1)])
  mean, var = gp.predict(jnp.asarray(y_std, jnp.float32), jnp.asarray(candidates, jnp.float32),
                         return_var=True)
  ei = np.asarray(expected_improvement(mean, jnp.sqrt(jnp.maximum(var, 0.0)), float(y_std.max())))
  seen = {z.astype(np.float32).tobytes() for z in result.Z}
  chosen = []
  for i in np.argsort(-ei):
    key = candidates[i].astype(np.float32).tobytes()
    if key not in seen:
      chosen.append(candidates[i])
      seen.add(key)
    if len(chosen) == batch:
      break
  return np.asarray(chosen)


def optimize(evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], dim: int,
             initial: int = 25, iterations: int = 5, batch: int = 25, seed: int = 0,
             fit_steps: int = 100) -> BOResult:
  """InstructZero's loop: Sobol design, then ``iterations`` EI batches (see module doc)."""
  Z = sobol_design(initial, dim, seed)
  y, S = evaluate(Z)
  result = BOResult(Z, np.asarray(y, float), np.asarray(S, float))
  rng = np.random.default_rng(seed)
  for _ in range(iterations):
    new = propose(result, batch, rng, fit_steps=fit_steps)
    y, S = evaluate(new)
    result = BOResult(np.concatenate([result.Z, new]), np.concatenate([result.y, y]),
                      np.concatenate([result.S, S]))
  return result
