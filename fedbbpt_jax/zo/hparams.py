"""Tunable scalars of a zero-order client step, kept in a pytree so sweeps can vmap them."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class HParams:
  """Step sizes of zero-order local training (all float32 scalars, vmappable).

  Gains follow SPSA conventions with the global step ``t >= 1``:
  ``lr_t = lr / (t + lr_offset) ** lr_decay`` and ``sigma_t = sigma / t ** sigma_decay``.

  Attributes:
    lr: step size ``a``.
    lr_offset: stability offset ``o`` of the step-size schedule.
    lr_decay: exponent ``alpha`` of the step-size schedule (0 = constant).
    sigma: perturbation size ``c`` (SPSA) or smoothing radius (Gaussian).
    sigma_decay: exponent ``gamma`` of the perturbation schedule (0 = constant).
    momentum: ``beta`` of SPSA-GC's gradient correction (ignored by others).
  """

  lr: jnp.ndarray
  lr_offset: jnp.ndarray
  lr_decay: jnp.ndarray
  sigma: jnp.ndarray
  sigma_decay: jnp.ndarray
  momentum: jnp.ndarray

  @classmethod
  def create(cls, lr: float, sigma: float, *, lr_offset: float = 0.0, lr_decay: float = 0.0,
             sigma_decay: float = 0.0, momentum: float = 0.0) -> "HParams":
    f = lambda v: jnp.asarray(v, jnp.float32)
    return cls(lr=f(lr), lr_offset=f(lr_offset), lr_decay=f(lr_decay), sigma=f(sigma),
               sigma_decay=f(sigma_decay), momentum=f(momentum))

  def step_size(self, step: jnp.ndarray) -> jnp.ndarray:
    """Returns ``lr_t`` for global step ``step`` (1-based)."""
    return self.lr / (step.astype(jnp.float32) + self.lr_offset) ** self.lr_decay

  def perturbation_size(self, step: jnp.ndarray) -> jnp.ndarray:
    """Returns ``sigma_t`` for global step ``step`` (1-based)."""
    return self.sigma / step.astype(jnp.float32) ** self.sigma_decay
