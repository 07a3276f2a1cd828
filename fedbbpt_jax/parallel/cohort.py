"""Runs one ``local_update`` over a cohort of clients: vmap, sharded over devices, or a loop.

``run_cohort(local_update, backend)`` returns
``cohort_fn(params, data, keys, hparams, round_idx) -> ClientOutput`` with a leading
client axis on every output. ``params`` is shared by all clients unless
``per_client_params`` is set (local-only training keeps one generator per client).

Backends:

* ``vmap``: one compiled batched program on one device.
* ``shard``: the cohort is split over a 1-D ``clients`` mesh of every local device
  (``jax.shard_map``), each device vmapping its share. A cohort that does not divide
  by the device count is padded with copies of its first client, whose outputs are
  cut off before they are returned, so padding never reaches the aggregate. On a
  CPU host, ``JAX_NUM_CPU_DEVICES=2`` (or ``parallel.cpu_devices`` in a config) makes
  one device per core: XLA keeps a depthwise-heavy network on about one core, so
  this is how both cores work.
* ``loop``: the shape of the reference codes, for debugging and as the benchmarks'
  baseline: a Python loop over clients; for a ``make_local_update`` client also over
  its local steps and candidates, one separately jitted black-box call per
  candidate (``local_update.unrolled``); other local updates are jitted per client.
  Same math and randomness as ``vmap``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

BACKENDS = ("loop", "shard", "vmap")
CLIENTS_AXIS = "clients"


def clients_mesh(devices: list | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh named ``clients`` over ``devices`` (default: every local device)."""
  devices = list(jax.devices() if devices is None else devices)
  return jax.sharding.Mesh(devices, (CLIENTS_AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def replicate(tree, mesh: jax.sharding.Mesh | None = None):
  """Places every leaf of ``tree`` on all devices of the ``clients`` mesh.

  The ``shard`` backend's round function returns its state replicated over the
  mesh; placing the initial state the same way keeps round 1 from compiling a
  second program for single-device inputs.
  """
  sharding = jax.sharding.NamedSharding(mesh or clients_mesh(), P())
  return jax.device_put(tree, sharding)


def _pad_leading(tree, pad: int):
  """Appends ``pad`` copies of entry 0 along the leading axis of every leaf."""
  if not pad:
    return tree
  return jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]), tree)


def _sharded(local_update: Callable, per_client_params: bool,
             mesh: jax.sharding.Mesh) -> Callable:
  num_devices = mesh.devices.size
  p_axis = 0 if per_client_params else None
  batched = jax.vmap(local_update, in_axes=(p_axis, 0, 0, None, None))
  clients = P(CLIENTS_AXIS)
  # Clients never communicate inside a round (no collectives in local_update), so
  # the varying-axis type check is off: estimator states start as constants that
  # become per-client values inside the scan of local steps.
  mapped = jax.shard_map(batched, mesh=mesh,
                         in_specs=(clients if per_client_params else P(), clients, clients,
                                   P(), P()),
                         out_specs=clients, check_vma=False)

  def cohort_fn(params, data, keys, hparams, round_idx):
    size = keys.shape[0]
    pad = -size % num_devices
    if per_client_params:
      params = _pad_leading(params, pad)
    out = mapped(params, _pad_leading(data, pad), _pad_leading(keys, pad), hparams, round_idx)
    return jax.tree.map(lambda a: a[:size], out)

  return cohort_fn


def _looped(local_update: Callable, per_client_params: bool) -> Callable:
  # A local update from ``make_local_update`` carries its Python-loop form (steps and
  # candidates unrolled, one jitted black-box call per candidate); any other is
  # jitted whole per client.
  jitted = getattr(local_update, "unrolled", None) or jax.jit(local_update)

  def cohort_fn(params, data, keys, hparams, round_idx):
    outs = []
    for i in range(keys.shape[0]):
      p_i = jax.tree.map(lambda a: a[i], params) if per_client_params else params
      d_i = jax.tree.map(lambda a: a[i], data)
      outs.append(jitted(p_i, d_i, keys[i], hparams, round_idx))
    return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

  return cohort_fn


def run_cohort(local_update: Callable, backend: str = "vmap", *,
               per_client_params: bool = False,
               mesh: jax.sharding.Mesh | None = None) -> Callable:
  """Maps ``local_update`` over the leading (client) axis of data and keys.

  Args:
    local_update: ``(params, data, key, hparams, round_idx) -> ClientOutput``.
    backend: ``'vmap'``, ``'shard'`` or ``'loop'`` (see the module docstring).
    per_client_params: whether ``params`` also has a leading client axis.
    mesh: the ``clients`` mesh of the ``shard`` backend (default: every local device).
  """
  if backend == "vmap":
    p_axis = 0 if per_client_params else None
    return jax.vmap(local_update, in_axes=(p_axis, 0, 0, None, None))
  if backend == "shard":
    return _sharded(local_update, per_client_params, mesh or clients_mesh())
  if backend == "loop":
    return _looped(local_update, per_client_params)
  raise ValueError(f"unknown cohort backend {backend!r}; choose one of {list(BACKENDS)}")
