"""Fixtures every Flower test shares."""

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
  """What a Flower process sets before messages are made (run, node and task ids): the
  tests that build messages in the pytest process (in-process grids, strategies) need it."""
  for name in ("_run_id", "_node_id", "_task_id"):
    monkeypatch.setattr(TaskIdentity, name, 1)
