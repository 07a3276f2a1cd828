"""How many CPU devices JAX exposes: one per core lets the ``shard`` backend use them all."""

from __future__ import annotations

import jax


def ensure_cpu_devices(count: int) -> int:
  """Makes JAX expose ``count`` CPU devices (0 = leave the default); returns the count.

  It must run before JAX initialises its backend (before the first array is made).
  Afterwards it only checks that the count already in force is the one asked for.

  Raises:
    RuntimeError: the backend is already initialised with another device count.
  """
  if count <= 0:
    return jax.device_count()
  try:
    jax.config.update("jax_num_cpu_devices", count)
  except RuntimeError:
    pass  # backend already initialised: check below
  if jax.default_backend() == "cpu" and jax.device_count() != count:
    raise RuntimeError(
        f"config.parallel.cpu_devices={count}, but JAX already runs with {jax.device_count()} "
        "CPU devices; set it before any JAX computation (e.g. JAX_NUM_CPU_DEVICES="
        f"{count} in the environment)")
  return jax.device_count()
