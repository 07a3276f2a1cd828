"""Runs one ``local_update`` over a cohort of clients: ``vmap`` on one device or a loop.

``run_cohort(local_update, backend)`` returns
``cohort_fn(params, data, keys, hparams, round_idx) -> ClientOutput`` with a leading
client axis on every output. ``params`` is shared by all clients unless
``per_client_params`` is set (local-only training keeps one generator per client).
"""

from __future__ import annotations

from typing import Callable

import jax

BACKENDS = ("loop", "vmap")


def run_cohort(local_update: Callable, backend: str = "vmap", *,
               per_client_params: bool = False) -> Callable:
  """Maps ``local_update`` over the leading (client) axis of data and keys.

  Args:
    local_update: ``(params, data, key, hparams, round_idx) -> ClientOutput``.
    backend: ``'vmap'`` (one compiled batched program) or ``'loop'`` (a Python loop
      over clients, each a separately jitted call: the reference codes' shape, for
      debugging and as a benchmark baseline).
    per_client_params: whether ``params`` also has a leading client axis.
  """
  p_axis = 0 if per_client_params else None
  if backend == "vmap":
    return jax.vmap(local_update, in_axes=(p_axis, 0, 0, None, None))
  if backend == "loop":
    jitted = jax.jit(local_update)

    def loop(params, data, keys, hparams, round_idx):
      outs = []
      for i in range(keys.shape[0]):
        p_i = jax.tree.map(lambda a: a[i], params) if per_client_params else params
        d_i = jax.tree.map(lambda a: a[i], data)
        outs.append(jitted(p_i, d_i, keys[i], hparams, round_idx))
      return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *outs)

    return loop
  raise ValueError(f"unknown cohort backend {backend!r}; choose one of {list(BACKENDS)}")
