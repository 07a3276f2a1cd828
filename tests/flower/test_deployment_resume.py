"""A real Flower deployment on loopback (``tests/helpers/flower_loopback.py``): a
SuperNode killed during a round; the round completes with the other two; a restarted
server resumes from its checkpoint without losing a row and goes on without the dead
node. (Its own file, so that it runs on another pytest worker than
``test_deployment.py``.)
"""

import time

import numpy as np
import pytest

from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.flower_loopback import (BASE, NODES, PER_STEP, RUN, STEPS,  # noqa: F401
                                           models,
                                           deployment, federation, rows, service)

pytestmark = pytest.mark.slow  # make test-quick leaves it out


@pytest.fixture(scope="module")
def node_extra():
  """Partition 2 hangs in training (killed mid-round below)."""
  return {2: {"train-delay-seconds": 600.0}}


def test_killed_node_and_server_resume(federation, service, tmp_path):
  workdir = str(tmp_path / "flower")
  overrides = f"{BASE} blackbox.url={service.url}".replace("train.rounds=2", "train.rounds=1")
  run_config = {**RUN, "overrides": overrides,
                "workdir": workdir, "round-timeout": 20.0, "min-nodes": NODES}
  background = federation.start_run(run_config)
  try:
    log = federation.logs["supernode2"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # node 2 has received its round-1 work
      if "train message" in open(log, errors="replace").read().lower():
        break
      time.sleep(0.5)
    else:
      pytest.fail("node 2 never received its training message")
    federation.kill_node(2)
    background.wait(timeout=300)
  finally:
    if background.poll() is None:
      background.kill()
  first = rows(workdir)
  assert [r["round"] for r in first] == [1]
  assert [(r["survivors"], r["nodes_missing"]) for r in first] == [(2, 1)]
  assert np.isfinite(first[0]["train_loss"])
  # The meter counts what the nodes that answered reported: the label mapping
  # (3 clients x 10 images), then 2 nodes x 3 steps x 32 examples.
  assert first[0]["bb_examples"] == 30 + 2 * STEPS * PER_STEP

  # A restarted server (a new `flwr run`, same workdir) resumes after round 1; the killed
  # node, still listed by the SuperLink until its heartbeat expires, is not waited for
  # (discovery's grace) and its partition misses round 2 too.
  run_config.update(overrides=overrides.replace("train.rounds=1", "train.rounds=2"),
                    **{"min-nodes": 2, "round-timeout": 60.0})
  out = federation.run(run_config)
  assert "resuming after round 1" in out.stdout, out.stdout[-3000:]
  after = rows(workdir)
  assert after[:1] == first  # nothing written before is lost
  assert [(r["round"], r["survivors"], r["nodes_missing"]) for r in after[1:]] == [(2, 2, 1)]
  assert after[1]["bb_examples"] == 30 + 4 * STEPS * PER_STEP
  assert RoundCheckpointer(workdir).rounds() == [1, 2]
