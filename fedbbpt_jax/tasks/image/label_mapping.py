"""Maps the black box's source classes (e.g. 1000 ImageNet classes) to task labels.

A mapping is a matrix ``M [num_sources, num_targets]``; the logit of target t is
``source_logits @ M[:, t]``, the mean logit of the sources mapped to t.

* ``frequency`` (ILM-VP's rule; docs/algorithms.md, "Frequency label mapping"): count
  ``C[s, t] = #{i : y_i = t, argmax f(x_i) = s}`` on a few training images, then
  repeatedly take the largest remaining entry (s*, t*), map s* -> t*, delete row s*,
  and delete column t* once it holds k sources. k = 1 is one-to-one; k > 1 is the
  many-to-one "top-k mean" mapping. Count matrices add across clients, so a server
  can build the map from its clients' counts without seeing their images.
* ``fixed``: a user-given list of source ids per target (e.g. ``SEMANTIC_FASHION_MNIST``).

The names a config picks from are the registry ``mappings.LABEL_MAPPINGS``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Hand-picked ImageNet-1k classes for the Fashion-MNIST labels: jersey, jean, sweatshirt,
# gown, trench coat, sandal, cardigan, running shoe, purse, cowboy boot.
SEMANTIC_FASHION_MNIST: tuple[tuple[int, ...], ...] = (
    (610,), (608,), (841,), (578,), (869,), (774,), (474,), (770,), (748,), (514,))


def prediction_counts(source_logits: np.ndarray, labels: np.ndarray,
                      num_targets: int) -> np.ndarray:
  """Returns ``C [num_sources, num_targets]``: how often label t is predicted as s.

  Ties among equal counts are broken by the summed softmax probability (weighted by
  1e-6, so it never overrides a count).
  """
  logits = np.asarray(source_logits, np.float64)
  labels = np.asarray(labels)
  num_sources = logits.shape[1]
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  counts = np.zeros((num_sources, num_targets))
  np.add.at(counts, (logits.argmax(1), labels), 1.0)
  prob_sums = np.zeros((num_sources, num_targets))
  for t in range(num_targets):
    prob_sums[:, t] = probs[labels == t].sum(0)
  return counts + 1e-6 * prob_sums


def frequency_mapping(counts: np.ndarray, sources_per_target: int = 1) -> np.ndarray:
  """Greedy frequency mapping from a count matrix (see module docstring)."""
  counts = np.array(counts, np.float64)
  num_sources, num_targets = counts.shape
  k = int(sources_per_target)
  if not 1 <= k <= num_sources // num_targets:
    raise ValueError(f"sources_per_target={k} must be in [1, {num_sources // num_targets}]")
  mapping = np.zeros((num_sources, num_targets), np.float32)
  held = np.zeros(num_targets, int)
  for _ in range(k * num_targets):
    s, t = np.unravel_index(np.argmax(counts), counts.shape)
    mapping[s, t] = 1.0
    held[t] += 1
    counts[s, :] = -np.inf
    if held[t] == k:
      counts[:, t] = -np.inf
  return mapping / k


def fixed_mapping(sources: Sequence[Sequence[int]], num_sources: int) -> np.ndarray:
  """Mapping where target t averages the logits of ``sources[t]``."""
  mapping = np.zeros((num_sources, len(sources)), np.float32)
  for t, ids in enumerate(sources):
    if not ids:
      raise ValueError(f"fixed label mapping: target {t} has no source class")
    mapping[list(ids), t] = 1.0 / len(ids)
  return mapping
