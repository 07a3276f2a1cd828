"""CoOp/BlackVIP's few-shot protocol, and its k-shot set split among federated clients.

CoOp (and BlackVIP after it) trains on ``k`` images of every class drawn from the train
split, validates on ``min(k, 4)`` of every class drawn from the val split, and tests on
the whole test split. The draws here follow that protocol with numpy's generator (CoOp
draws with Python's ``random.sample``; the same protocol, not the same images).

Where a source has no val split (ImageNet in CoOp's layout, several TFDS sets), the val
images are drawn from the train rows outside the k-shot set, so the two stay disjoint.

In the federated setting the k-shot set is *split* among the clients (``split_among_
clients``, the partitioners of ``data/partition.py``): with ``C`` clients each client
holds about ``k / C`` images of each class (IID: a uniform random split of the whole
set, so a client's count of one class varies around ``k / C``; Dirichlet: label skew,
each class cut by Dirichlet(alpha) proportions). The image family does the same to the
``train`` split a dataset loader returns (``client_parts``). BDPL/FedOne's protocol,
which multiplies ``k`` by the number of clients instead, is ``data/few_shot.py``.

Example:
    >>> split = coop_few_shot(train_labels, k=16, seed=1, num_classes=10,
    ...                       val_labels=val_labels)
    >>> np.bincount(train_labels[split.train])     # 16 of every class
    >>> np.bincount(val_labels[split.val])         # 4 of every class
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from fedbbpt_jax.data.few_shot import FewShotError
from fedbbpt_jax.data.partition import DEFAULT_ALPHA, DEFAULT_SHARDS_PER_CLIENT, make_partition

MAX_VAL_SHOTS = 4  # CoOp's val set: min(k, 4) images per class


def _class_name(c: int, class_names: Sequence[str] | None) -> str:
  return f"class {c} ({class_names[c]!r})" if class_names is not None else f"class {c}"


def k_per_class(labels: np.ndarray, k: int, num_classes: int, rng: np.random.Generator, *,
                candidates: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                where: str = "the train split", allow_fewer: bool = False) -> np.ndarray:
  """Sorted indices of ``k`` rows of every class ``0..num_classes-1``, drawn without replacement.

  Args:
    labels: int labels ``[n]``.
    k: rows per class (>= 1).
    num_classes: the classes to draw.
    rng: the generator of the draws (classes drawn in label order).
    candidates: the rows to draw from (default: all).
    class_names: names for the error message.
    where: the split in words, for the error message.
    allow_fewer: a class with fewer than ``k`` rows gives all it has (CoOp's behaviour)
      instead of an error.

  Raises:
    FewShotError: naming the class, its count, ``where`` and ``k``.
  """
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  labels = np.asarray(labels, np.int64)
  pool = np.arange(labels.size) if candidates is None else np.asarray(candidates, np.int64)
  pool_labels = labels[pool]
  kept = [np.empty((0,), np.int64)]
  for c in range(num_classes):
    of_class = pool[pool_labels == c]
    if of_class.size < k and not allow_fewer:
      raise FewShotError(f"{_class_name(c, class_names)} has {of_class.size} images in "
                         f"{where}; the {k}-shot protocol needs {k}")
    kept.append(rng.choice(of_class, size=min(k, of_class.size), replace=False))
  return np.sort(np.concatenate(kept))


class FewShotSplit(NamedTuple):
  """A CoOp few-shot draw.

  Attributes:
    train: sorted indices into the train split, ``k`` per class.
    val: sorted indices of ``min(k, 4)`` per class, into the val split, or into the
      train split (disjoint from ``train``) when ``val_from_train``.
    val_from_train: whether ``val`` indexes the train split.
  """

  train: np.ndarray
  val: np.ndarray
  val_from_train: bool


def coop_few_shot(train_labels: np.ndarray, k: int, seed: int, num_classes: int, *,
                  val_labels: np.ndarray | None = None,
                  class_names: Sequence[str] | None = None, allow_fewer: bool = False,
                  where: str = "the train split", val_where: str = "the val split"
                  ) -> FewShotSplit:
  """CoOp's k-shot train set and ``min(k, 4)``-shot val set.

  Args:
    train_labels: int labels of the whole train split.
    k: shots per class; 0 keeps every train and val row (CoOp's ``NUM_SHOTS < 1``).
    seed: seed of the draws (the train and val draws use independent streams).
    num_classes: classes ``0..num_classes-1``; each must have ``k`` train rows.
    val_labels: int labels of the val split; ``None`` draws val from the train rows
      outside the k-shot set (k = 0: no val rows then).
    class_names: the classes' names, for error messages.
    where: the train split in words, for error messages.
    val_where: the val split in words, for error messages.
    allow_fewer: see ``k_per_class``.

  Raises:
    FewShotError: a class with fewer rows than the draw needs, named.
  """
  train_labels = np.asarray(train_labels, np.int64)
  if k < 0:
    raise ValueError(f"k must be >= 0 (0 = every image), got {k}")
  if k == 0:
    val = (np.arange(len(val_labels)) if val_labels is not None
           else np.empty((0,), np.int64))
    return FewShotSplit(np.arange(train_labels.size), val, val_labels is None)
  train_rng, val_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
  train = k_per_class(train_labels, k, num_classes, train_rng, class_names=class_names,
                      where=where, allow_fewer=allow_fewer)
  val_k = min(k, MAX_VAL_SHOTS)
  if val_labels is None:
    rest = np.setdiff1d(np.arange(train_labels.size), train)
    val = k_per_class(train_labels, val_k, num_classes, val_rng, candidates=rest,
                      class_names=class_names, allow_fewer=allow_fewer,
                      where=f"{where} outside the {k}-shot train set (the val draw)")
    return FewShotSplit(train, val, True)
  val = k_per_class(val_labels, val_k, num_classes, val_rng, class_names=class_names,
                    where=val_where, allow_fewer=allow_fewer)
  return FewShotSplit(train, val, False)


def split_among_clients(labels: np.ndarray, num_clients: int, partition: str, seed: int, *,
                        alpha: float = DEFAULT_ALPHA,
                        shards_per_client: int = DEFAULT_SHARDS_PER_CLIENT
                        ) -> list[np.ndarray]:
  """A k-shot set's rows split among ``num_clients`` (each about ``k / num_clients`` per class).

  Args:
    labels: int labels of the k-shot set (e.g. ``train_labels[split.train]``).
    num_clients: clients.
    partition: ``'iid'``, ``'dirichlet'`` (label skew, ``alpha``) or ``'shards'``.
    seed: seed of the partition.

  Returns:
    One sorted index array (into ``labels``) per client; disjoint, together every row.
  """
  return make_partition(partition, np.asarray(labels, np.int64), num_clients, seed,
                        alpha=alpha, shards_per_client=shards_per_client)
