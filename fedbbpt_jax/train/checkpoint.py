"""Round checkpoints with orbax: the server state plus JSON bookkeeping (queries, time).

A checkpoint that exists may still be unreadable (a disk filled up, a file was cut
short or overwritten after the save): ``restore`` then raises ``CheckpointReadError``
naming the round, its folder and the damaged file where it can tell, instead of
orbax's or tensorstore's own traceback; ``set_aside`` moves such a round out of the way
(``train.run_records.RunRecords`` resumes from the round before it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

import orbax.checkpoint as ocp

UNREADABLE_DIR = "checkpoints_unreadable"  # where unreadable rounds are moved, in the workdir
_BINARY_SUFFIXES = (".ocdbt", ".txt")


class CheckpointReadError(RuntimeError):
  """A saved round's checkpoint cannot be read back.

  Attributes:
    round_idx: the round.
    path: the round's checkpoint folder.
    bad_file: the damaged file when it can be told ('' otherwise).
  """

  def __init__(self, round_idx: int, path: str, bad_file: str, cause: BaseException):
    self.round_idx, self.path, self.bad_file = round_idx, path, bad_file
    text = " ".join(str(cause).split())
    text = text if len(text) <= 300 else text[:300] + " ..."
    where = f" (file {bad_file})" if bad_file else ""
    super().__init__(f"checkpoint of round {round_idx} at {path} is unreadable{where}: "
                     f"{type(cause).__name__}: {text}")


class NoReadableCheckpoint(RuntimeError):
  """Checkpoints exist in a workdir but none of them can be read back."""


def damaged_file(round_dir: str, error: BaseException) -> str:
  """The file of ``round_dir`` that ``error`` is about, or '' when it cannot be told.

  A file named in the error's text (tensorstore names the file it failed to read);
  otherwise the first bookkeeping file that is not valid JSON (Python's JSON errors name
  no file).
  """
  named = re.findall(re.escape(round_dir) + r'[^"\'\s:,]*', str(error))
  named = [p for p in named if os.path.isfile(p)]
  if named:
    return named[-1]
  for root, dirs, files in sorted(os.walk(round_dir)):
    dirs[:] = sorted(d for d in dirs if d != "d")  # array data: binary
    for name in sorted(files):
      if name.endswith(_BINARY_SUFFIXES):
        continue
      path = os.path.join(root, name)
      try:
        with open(path) as f:
          json.load(f)
      except (ValueError, UnicodeDecodeError):
        return path
  return ""


class RoundCheckpointer:
  """Saves one checkpoint per completed round under ``workdir/checkpoints/<round>``.

  Saving is synchronous, so a checkpoint that exists is complete; a crash mid-save
  leaves the previous rounds intact (orbax writes to a temporary folder first).
  """

  def __init__(self, workdir: str, max_to_keep: int = 3):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, "checkpoints")
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_round(self) -> int | None:
    return self._manager.latest_step()

  def rounds(self) -> list[int]:
    """The saved rounds, oldest first."""
    return sorted(self._manager.all_steps())

  def round_dir(self, round_idx: int) -> str:
    return os.path.join(self.directory, str(round_idx))

  def save(self, round_idx: int, state: Any, meta: dict) -> None:
    self._manager.save(round_idx, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    self._manager.wait_until_finished()

  def restore(self, round_idx: int, like_state: Any = None) -> tuple[Any, dict]:
    """Restores the state (with the structure and dtypes of ``like_state``) and meta.

    Without ``like_state`` the state comes back as orbax stored it (nested dicts of
    arrays), e.g. to compare two runs' checkpoints leaf by leaf.

    Raises:
      CheckpointReadError: the round's files cannot be read (names round and file).
    """
    try:
      restored = self._manager.restore(round_idx, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(like_state), meta=ocp.args.JsonRestore()))
      return restored["state"], restored["meta"]
    except Exception as e:  # orbax, tensorstore and json raise many kinds on damaged files
      path = self.round_dir(round_idx)
      raise CheckpointReadError(round_idx, path, damaged_file(path, e), e) from e

  def set_aside(self, round_idx: int) -> str:
    """Moves round ``round_idx``'s folder to ``workdir/checkpoints_unreadable/``; returns
    its new path (kept for inspection; the round can then be saved again)."""
    target = os.path.join(self.workdir, UNREADABLE_DIR, str(round_idx))
    suffix = 1
    while os.path.exists(target):
      suffix += 1
      target = os.path.join(self.workdir, UNREADABLE_DIR, f"{round_idx}-{suffix}")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.move(self.round_dir(round_idx), target)
    self._manager.reload()
    return target

  def close(self) -> None:
    self._manager.close()
