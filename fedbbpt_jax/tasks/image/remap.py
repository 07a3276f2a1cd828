"""Iterative label mapping (ILM-VP), federated, and the label-map files.

Before every ``task.remap_every``-th round the clients run the prompted black box on
their mapping images (one call each) and send their prediction counts
(``setup_statistics.py``); the server sums them and derives a candidate mapping
(``label_mapping.frequency_mapping``).
Each mapping in force is kept in the workdir with what it cost, so a resumed run
reads it back instead of querying again.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.tasks.image.label_mapping import frequency_mapping
from fedbbpt_jax.tasks.image.setup_statistics import REMAP_CORRECT, REMAP_COUNTS
from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
from fedbbpt_jax.tasks.local_setup import Gather, flat_params, summed, work
from fedbbpt_jax.tasks.protocol import TaskRefresh

def choose_mapping(current: np.ndarray, candidate: np.ndarray, accept: str,
                   correct: Callable[[], tuple[int, int]]) -> np.ndarray:
  """The mapping for the next rounds: ``candidate`` if ``accept == 'always'``, or if it
  classifies the clients' mapping images at least as well as ``current``
  (``correct() -> (right with current, right with candidate)``, summed over the
  clients; asked only for ``'better'``)."""
  if accept not in REMAP_ACCEPT:
    raise ValueError(f"remap_accept={accept!r} is not one of {REMAP_ACCEPT}")
  if accept == "better":
    right_current, right_candidate = correct()
    if right_current > right_candidate:
      return np.asarray(current, np.float32)
  return np.asarray(candidate, np.float32)


def refresh_file(round_idx: int) -> str:
  """The workdir file of the label mapping derived before round ``round_idx`` (0-based)."""
  return f"label_map_r{round_idx:04d}.npz"


REMAP_ACCEPT = ("better", "always")


def make_label_map_refresh(task: VisualReprogramming, gather: Gather, cfg: Any,
                           build_workdir: str | None) -> Callable[..., TaskRefresh]:
  """Iterative label mapping (ILM-VP; docs/algorithms.md, "Frequency label mapping"), federated.

  Before round r the clients run the *prompted* black box on their mapping images
  (one call each, ``remap_counts``) and send the server their prediction counts; the
  server sums them and derives a candidate mapping. With ``remap_accept='better'``
  (default) the clients then count how many of those same images the current and the
  candidate mapping classify right (``remap_correct``: their outputs were kept, no
  further query) and the server keeps the candidate only if it is at least as good;
  ``'always'`` takes it as is. ``gather`` asks the clients (``local_setup.py``).
  The mapping in force is kept in ``workdir`` (default ``build_workdir``; a vmapped
  sweep passes each member's) as ``refresh_file(r)`` with what it cost, so a resume
  reads it instead of asking again.
  """
  accept = cfg.get("remap_accept", "better")

  def derive(params: Any, current: np.ndarray, round_idx: int) -> tuple[np.ndarray, int, int]:
    stats = gather(REMAP_COUNTS, {"params": flat_params(params), "round": round_idx,
                                  "keep": int(accept == "better")})
    candidate = frequency_mapping(summed(stats, "counts"), cfg.sources_per_label)

    def correct() -> tuple[int, int]:
      right = gather(REMAP_CORRECT, {"round": round_idx, "current": current,
                                     "candidate": candidate})
      return int(summed(right, "current")), int(summed(right, "candidate"))

    return (choose_mapping(current, candidate, accept, correct),) + work(stats)

  def refresh(params: Any, round_idx: int, current: Any = None,
              workdir: str | None = build_workdir) -> TaskRefresh:
    path = os.path.join(workdir, refresh_file(round_idx)) if workdir else None
    if params is None:  # resume: read back what an earlier session derived and metered
      if not path or not os.path.exists(path):
        raise FileNotFoundError(f"cannot resume: the label mapping derived before round "
                                f"{round_idx + 1} is missing ({path or 'no workdir'})")
      label_map, _, _ = cached_label_map(path, None)
      return TaskRefresh(dataclasses.replace(task, label_map=jnp.asarray(label_map)), 0, 0,
                         (refresh_file(round_idx),))
    in_force = np.asarray((current or task).label_map)
    label_map, queries, calls = cached_label_map(path, lambda: derive(params, in_force, round_idx))
    return TaskRefresh(dataclasses.replace(task, label_map=jnp.asarray(label_map)), queries,
                       calls, (refresh_file(round_idx),) if path else ())

  return refresh


def cached_label_map(path: str | None, compute: Callable) -> tuple[np.ndarray, int, int]:
  """The label map and its (examples, calls): read from ``path`` if it holds one, else computed.

  A computed map is written to ``path``, so a resumed run reuses it instead of
  querying the black box again (against a paid API the mapping costs queries, and
  the restored query meter would not count them a second time).
  """
  if path and os.path.exists(path):
    with np.load(path) as f:
      queries = int(f["mapping_queries"])
      calls = int(f["mapping_calls"]) if "mapping_calls" in f else 0
      return f["label_map"], queries, calls
  label_map, queries, calls = compute()
  if path:
    write_label_map(path, label_map, queries, calls)
  return label_map, queries, calls


def write_label_map(path: str, label_map: np.ndarray, mapping_queries: int,
                    mapping_calls: int) -> None:
  """Writes ``label_map.npz`` atomically (a crash never leaves half a file)."""
  tmp = path + ".tmp.npz"
  np.savez(tmp, label_map=np.asarray(label_map), mapping_queries=np.int64(mapping_queries),
           mapping_calls=np.int64(mapping_calls))
  os.replace(tmp, path)
