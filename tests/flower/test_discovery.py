"""``server_app.discover``: which node holds which partition, over a grid whose nodes answer
when they like. A node that has not answered an earlier question is neither asked again nor
waited for; its late answer still counts."""

import time
import types


from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.server_app import discover



def answer(question_id, node):
  """A node's reply to a discovery question (the fields ``discover`` reads)."""
  return types.SimpleNamespace(
      metadata=types.SimpleNamespace(reply_to_message_id=question_id, src_node_id=node),
      has_error=lambda: False, content={M.NODE: {M.PARTITION_ID: node - 10}})


class SlowGrid:
  """Nodes 10, 11, 12 hold partitions 0, 1, 2; a node answers a question only after
  ``delay[node]`` pulls of it (``None``: never)."""

  def __init__(self, delay):
    self.delay, self.pushed, self.asked = delay, [], {}

  def get_node_ids(self):
    return [10, 11, 12]

  def push_messages(self, messages):
    ids = []
    for m in messages:
      node = m.metadata.dst_node_id
      ids.append(f"q{len(self.pushed)}")
      self.pushed.append(node)
      self.asked[ids[-1]] = [node, 0]
    return ids

  def pull_messages(self, ids):
    out = []
    for i in ids:
      node, pulls = self.asked[i]
      self.asked[i][1] = pulls + 1
      if self.delay[node] is not None and pulls + 1 >= self.delay[node]:
        out.append(answer(i, node))
        del self.asked[i]
    return out


def test_a_node_that_never_answered_is_asked_once_and_its_late_answer_counts():
  grid = SlowGrid({10: 1, 11: 1, 12: 10**6})
  unanswered = {}
  start = time.monotonic()
  first = discover(grid, 3, {}, wait_for=2, timeout=30.0, log=lambda s: None, grace=0.3,
                   unanswered=unanswered)
  assert first == {0: 10, 1: 11}
  assert list(unanswered.values()) == [12] and grid.pushed == [10, 11, 12]
  # Every round's discovery: the open question is pulled, not asked again, not waited for.
  for _ in range(3):
    assert discover(grid, 3, first, wait_for=0, timeout=30.0, log=lambda s: None,
                    grace=5.0, unanswered=unanswered) == first
  assert grid.pushed == [10, 11, 12]
  assert time.monotonic() - start < 3.0  # one grace of 0.3 s, not three of 5 s
  # Node 12 answers the first question at last: the next discovery maps it.
  grid.delay[12] = 0
  got = discover(grid, 3, first, wait_for=0, timeout=30.0, log=lambda s: None,
                 unanswered=unanswered)
  assert got == {0: 10, 1: 11, 2: 12} and unanswered == {} and grid.pushed == [10, 11, 12]


def test_without_open_questions_a_silent_node_is_asked_each_time():
  grid = SlowGrid({10: 1, 11: 1, 12: None})
  for _ in range(2):
    discover(grid, 3, {0: 10, 1: 11}, wait_for=0, timeout=30.0, log=lambda s: None,
             grace=0.05)
  assert grid.pushed == [12, 12]
