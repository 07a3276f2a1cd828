"""Runs a cohort whose first ``count`` slots are members and the rest empty (Poisson cohorts).

``run_partial_cohort(local_update, backend, chunk)`` returns
``cohort_fn(params, data, keys, hparams, round_idx, count) -> outputs``: the same
outputs as ``run_cohort``'s for the member slots ``[0, count)`` and zeros for the empty
slots ``[count, C)``, which run no local step at all, so that they send the black box
nothing (a remote black box is never queried for them, and the query meter, which
counts members only, equals the real traffic).

* ``vmap``: the ``C`` slots (a multiple of ``chunk``) are ``C / chunk`` chunks; a
  ``lax.map`` over them runs a chunk wholly of members as one vmapped call and skips
  the others (``lax.cond`` on a scalar: a real branch under ``jit``); the members of
  the one partly filled chunk then run one at a time (a second ``lax.map`` over its
  slots, each skipped when empty). One compiled program for any ``count``; memory
  grows with ``chunk``, not with ``C``.
* ``loop``: eager (``count`` is concrete): ``run_cohort``'s loop over the members.

Under ``vmap`` of the whole round (a vmapped sweep) a ``lax.cond`` becomes a select that
runs both branches, so such callers refuse Poisson cohorts
(``federated.algorithms.poisson.refuse_poisson``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from fedbbpt_jax.parallel.cohort import run_cohort

PARTIAL_BACKENDS = ("loop", "vmap")


def zeros_of(fn: Callable, *args) -> object:
  """Zeros shaped like ``fn(*args)``'s outputs (nothing is computed)."""
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, *args))


def _one(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


def _chunked(local_update: Callable, chunk: int) -> Callable:
  batched = jax.vmap(local_update, in_axes=(None, 0, 0, None, None))

  def cohort_fn(params, data, keys, hparams, round_idx, count):
    slots = keys.shape[0]
    if slots % chunk:
      raise ValueError(f"the cohort's {slots} slots are not a multiple of chunk={chunk}")
    as_chunks = lambda a: a.reshape((slots // chunk, chunk) + a.shape[1:])
    zero_one = zeros_of(local_update, params, _one(data, 0), keys[0], hparams, round_idx)
    zero_chunk = jax.tree.map(lambda z: jnp.zeros((chunk,) + z.shape, z.dtype), zero_one)

    def full_chunk(args):  # a chunk wholly of members runs as one vmapped call
      index, chunk_data, chunk_keys = args
      return jax.lax.cond((index + 1) * chunk <= count,
                          lambda: batched(params, chunk_data, chunk_keys, hparams, round_idx),
                          lambda: zero_chunk)

    full = jax.lax.map(full_chunk, (jnp.arange(slots // chunk),
                                    jax.tree.map(as_chunks, data), as_chunks(keys)))
    full = jax.tree.map(lambda a: a.reshape((slots,) + a.shape[2:]), full)
    # The partly filled chunk: its members one at a time (slot ``start + j`` for j < chunk).
    rest = (count // chunk) * chunk + jnp.arange(chunk)
    rows = jnp.minimum(rest, slots - 1)  # in range; a slot past the end never runs

    def one_slot(args):
      slot, row = args
      return jax.lax.cond(slot < count,
                          lambda: local_update(params, _one(data, row), keys[row], hparams,
                                               round_idx),
                          lambda: zero_one)

    partial = jax.lax.map(one_slot, (rest, rows))
    # Slots past the end (a full last chunk) are dropped; a skipped slot's zeros land on
    # zeros (it lies in no chunk wholly of members).
    return jax.tree.map(lambda f, p: f.at[rest].set(p, mode="drop"), full, partial)

  return cohort_fn


def _looped(local_update: Callable) -> Callable:
  looped = run_cohort(local_update, "loop")

  def cohort_fn(params, data, keys, hparams, round_idx, count):
    count, slots = int(count), keys.shape[0]
    zero_one = zeros_of(local_update, params, _one(data, 0), keys[0], hparams, round_idx)
    empty = jax.tree.map(lambda z: jnp.zeros((slots - count,) + z.shape, z.dtype), zero_one)
    if not count:
      return empty
    ran = looped(params, jax.tree.map(lambda a: a[:count], data), keys[:count], hparams,
                 round_idx)
    return jax.tree.map(lambda a, z: jnp.concatenate([a, z]), ran, empty)

  return cohort_fn


def run_partial_cohort(local_update: Callable, backend: str = "vmap",
                       chunk: int = 1) -> Callable:
  """Maps ``local_update`` over the first ``count`` slots (see the module docstring).

  Args:
    local_update: ``(params, data, key, hparams, round_idx) -> outputs`` (shared params).
    backend: ``'vmap'`` (chunked) or ``'loop'``.
    chunk: clients per vmapped call (``vmap``); the slots must be a multiple of it.
  """
  if backend == "vmap":
    return _chunked(local_update, int(chunk))
  if backend == "loop":
    return _looped(local_update)
  raise ValueError(f"backend {backend!r} cannot run a partial cohort; choose one of "
                   f"{list(PARTIAL_BACKENDS)}")
