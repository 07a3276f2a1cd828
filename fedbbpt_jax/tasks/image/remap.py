"""Iterative label mapping (ILM-VP), federated, and the label-map files.

Before every ``task.remap_every``-th round the clients run the prompted black box on
their mapping images (one call each) and send their prediction counts; the server
sums them and derives a candidate mapping (``label_mapping.frequency_mapping``).
Each mapping in force is kept in the workdir with what it cost, so a resumed run
reads it back instead of querying again.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.data import ClientData
from fedbbpt_jax.tasks.image.label_mapping import frequency_mapping, prediction_counts
from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
from fedbbpt_jax.tasks.protocol import TaskRefresh

def mapping_outputs(predict: Callable[[jnp.ndarray], jnp.ndarray], clients: ClientData,
                    m: int) -> list[tuple[np.ndarray, np.ndarray]]:
  """Every client's ``(source logits, labels)`` on its first ``m`` images: one call each.

  The outputs stay with their client; only counts built from them reach the server.
  """
  outputs = []
  for i in range(clients.num_examples.shape[0]):
    n = min(m, int(clients.num_examples[i]))
    if n:
      outputs.append((np.asarray(predict(jnp.asarray(clients.x[i, :n]))),
                      np.asarray(clients.y[i, :n])))
  return outputs


def counted_mapping(outputs: list[tuple[np.ndarray, np.ndarray]], num_classes: int,
                    sources_per_label: int) -> tuple[np.ndarray, int, int]:
  """The frequency mapping from the clients' summed prediction counts, and the
  black-box examples and calls the outputs cost."""
  counts = sum(prediction_counts(lg, y, num_classes) for lg, y in outputs)
  return (frequency_mapping(counts, sources_per_label), sum(len(y) for _, y in outputs),
          len(outputs))


def correct_predictions(outputs: list[tuple[np.ndarray, np.ndarray]],
                        label_map: np.ndarray) -> int:
  """How many of the clients' images ``label_map`` classifies right (each client counts
  its own; the server sums the integers)."""
  m = np.asarray(label_map, np.float64)
  return int(sum(np.sum(np.argmax(np.asarray(lg, np.float64) @ m, -1) == y)
                 for lg, y in outputs))


def choose_mapping(outputs: list[tuple[np.ndarray, np.ndarray]], current: np.ndarray,
                   candidate: np.ndarray, accept: str) -> np.ndarray:
  """The mapping for the next rounds: ``candidate`` if ``accept == 'always'`` or it
  classifies the clients' mapping images at least as well as ``current``."""
  if accept not in REMAP_ACCEPT:
    raise ValueError(f"remap_accept={accept!r} is not one of {REMAP_ACCEPT}")
  if accept == "better" and (correct_predictions(outputs, current)
                             > correct_predictions(outputs, candidate)):
    return np.asarray(current, np.float32)
  return np.asarray(candidate, np.float32)


def refresh_file(round_idx: int) -> str:
  """The workdir file of the label mapping derived before round ``round_idx`` (0-based)."""
  return f"label_map_r{round_idx:04d}.npz"


REMAP_ACCEPT = ("better", "always")


def make_label_map_refresh(task: VisualReprogramming, clients: ClientData, cfg: Any,
                           dataset: str, build_workdir: str | None
                           ) -> Callable[..., TaskRefresh]:
  """Iterative label mapping (ILM-VP; docs/algorithms.md, "Frequency label mapping"), federated.

  Before round r the clients run the *prompted* black box on their mapping images
  (one call each) and send the server their prediction counts; the server sums them
  and derives a candidate mapping. With ``remap_accept='better'`` (default) the
  clients then count how many of those same images the current and the candidate
  mapping classify right (their outputs are kept: no further query) and the server
  keeps the candidate only if it is at least as good; ``'always'`` takes it as is.
  The mapping in force is kept in ``workdir`` (default ``build_workdir``; a vmapped
  sweep passes each member's) as ``refresh_file(r)`` with what it cost, so a resume
  reads it instead of asking again.
  """
  predict = jax.jit(task.source_logits)
  accept = cfg.get("remap_accept", "better")

  def derive(params: Any, current: np.ndarray) -> tuple[np.ndarray, int, int]:
    outputs = mapping_outputs(lambda x: predict(params, x), clients,
                              cfg.mapping_examples_per_client)
    candidate, examples, calls = counted_mapping(outputs, task.num_classes,
                                                 cfg.sources_per_label)
    return choose_mapping(outputs, current, candidate, accept), examples, calls

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
    label_map, queries, calls = cached_label_map(path, lambda: derive(params, in_force))
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
