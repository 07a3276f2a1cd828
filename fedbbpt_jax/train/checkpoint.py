"""Round checkpoints with orbax: the server state plus JSON bookkeeping (queries, time)."""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp


class RoundCheckpointer:
  """Saves one checkpoint per completed round under ``workdir/checkpoints/<round>``.

  Saving is synchronous, so a checkpoint that exists is complete; a crash mid-save
  leaves the previous rounds intact (orbax writes to a temporary folder first).
  """

  def __init__(self, workdir: str, max_to_keep: int = 3):
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")), options=options)

  def latest_round(self) -> int | None:
    return self._manager.latest_step()

  def save(self, round_idx: int, state: Any, meta: dict) -> None:
    self._manager.save(round_idx, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    self._manager.wait_until_finished()

  def restore(self, round_idx: int, like_state: Any = None) -> tuple[Any, dict]:
    """Restores the state (with the structure and dtypes of ``like_state``) and meta.

    Without ``like_state`` the state comes back as orbax stored it (nested dicts of
    arrays), e.g. to compare two runs' checkpoints leaf by leaf.
    """
    restored = self._manager.restore(round_idx, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(like_state), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def close(self) -> None:
    self._manager.close()
