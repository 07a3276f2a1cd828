"""Pytrees <-> Flower ``ArrayRecord``s with named keys, decoded against a template.

Every leaf travels under the name of its path in the pytree (``delta/frame``,
``metrics/train_loss``, ``key_data``), so the receiving side can check the record
against the structure it expects: a missing name, an unexpected name, or a leaf of
another shape or dtype raises ``StructureMismatch`` naming every offending key,
instead of silently pairing arrays by position.

Example::

    record = to_array_record(upload)
    upload = from_array_record(record, like=jax.eval_shape(client_update, ...))
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flwr.app import Array, ArrayRecord

PyTree = Any

__all__ = ["StructureMismatch", "from_array_record", "leaf_names", "to_array_record"]


class StructureMismatch(ValueError):
  """An ``ArrayRecord`` does not hold the pytree the receiver expects."""


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey / FlattenedIndexKey
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _path_name(path: tuple) -> str:
  return "/".join(_key_name(k) for k in path) or "value"


def leaf_names(tree: PyTree) -> list[str]:
  """The record names of ``tree``'s leaves, in flattening order."""
  return [_path_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def to_array_record(tree: PyTree) -> ArrayRecord:
  """``tree``'s leaves as named NumPy arrays (typed PRNG keys go as their raw data)."""
  arrays = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    arrays[_path_name(path)] = Array(np.array(leaf, order="C"))  # 0-d stays 0-d
  return ArrayRecord(arrays)


def from_array_record(record: ArrayRecord, like: PyTree, what: str = "record") -> PyTree:
  """The pytree ``like`` describes (arrays or ``jax.ShapeDtypeStruct``s), read from
  ``record``.

  Raises:
    StructureMismatch: names missing from ``record`` or not in ``like``, or leaves of
      another shape or dtype (all listed, with ``what`` naming the record).
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(like)
  expected = {_path_name(path): leaf for path, leaf in flat}
  problems = []
  missing = sorted(set(expected) - set(record.keys()))
  extra = sorted(set(record.keys()) - set(expected))
  if missing:
    problems.append(f"missing {missing}")
  if extra:
    problems.append(f"unexpected {extra}")
  leaves = []
  for name, want in expected.items():
    if name in missing:
      continue
    got = record[name].numpy()
    if tuple(got.shape) != tuple(want.shape) or np.dtype(got.dtype) != np.dtype(want.dtype):
      problems.append(f"{name}: {got.dtype}{list(got.shape)} where "
                      f"{np.dtype(want.dtype)}{list(want.shape)} is expected")
    leaves.append(got)
  if problems:
    raise StructureMismatch(f"{what} does not match the expected structure: "
                            + "; ".join(problems))
  return jax.tree_util.tree_unflatten(treedef, leaves)
