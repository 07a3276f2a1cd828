"""``server_app.PromptGrid``: Flower's push and pull, with replies looked for every
``poll_seconds`` (Flower's own ``send_and_receive`` sleeps 3 s between pulls); over the
in-process grid (``tests/helpers/inprocess_grid.py``) with the real ClientApp. The
loopback deployments (``test_deployment*.py``) run it over a real SuperLink."""

import pytest
from flwr.app import Message, RecordDict

from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.server_app import PromptGrid
from tests.helpers.inprocess_grid import InProcessGrid



def queries(grid):
  return [Message(RecordDict(), dst_node_id=n, message_type=M.QUERY, group_id="discovery")
          for n in grid.get_node_ids()]


def partitions(replies):
  return sorted(int(r.content[M.NODE][M.PARTITION_ID]) for r in replies)


def test_every_reply_in_comes_back_after_one_pull(tmp_path):
  grid = InProcessGrid(str(tmp_path), range(3))
  prompt = PromptGrid(grid, poll_seconds=0.05)
  assert prompt.get_node_ids() == [1000, 1001, 1002]  # delegated to the grid
  assert partitions(prompt.send_and_receive(queries(grid), timeout=60.0)) == [0, 1, 2]
  assert len(grid.pulled) == 1  # nothing left to wait for


def test_a_silent_node_is_asked_for_until_the_timeout_and_the_others_come_back(tmp_path):
  grid = InProcessGrid(str(tmp_path), range(3), down=(1,))
  sent = queries(grid)
  replies = PromptGrid(grid, poll_seconds=0.05).send_and_receive(sent, timeout=0.3)
  assert partitions(replies) == [0, 2]
  silent = {sent[1].metadata.message_id}
  assert grid.pulled[0] == {m.metadata.message_id for m in sent}
  assert len(grid.pulled) > 1 and all(ids == silent for ids in grid.pulled[1:])


def test_a_poll_interval_that_is_not_positive_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"^poll_seconds=0 must be > 0$"):
    PromptGrid(InProcessGrid(str(tmp_path), range(1)), poll_seconds=0)
