"""The ``shard`` backend across 2 local processes (jax.distributed, gloo) equals ``vmap``."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # make test-quick leaves it out

SCRIPT = os.path.join(os.path.dirname(__file__), "multi_process_script.py")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_sharded_round_over_two_processes_equals_single_process_vmap():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  port = str(free_port())
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(SCRIPT))))
  procs = [subprocess.Popen([sys.executable, SCRIPT, str(i), port, "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=root)
           for i in range(2)]
  outs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=300)
      assert p.returncode == 0, err[-3000:]
      outs.append(json.loads([line for line in out.splitlines() if line.startswith("{")][-1]))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for i, r in enumerate(outs):
    assert (r["process"], r["processes"], r["global_devices"], r["local_devices"]) == (i, 2, 4, 2)
    # Cohort of 5 over 4 devices in 2 processes (padded to 8), 3 rounds.
    np.testing.assert_allclose(r["shard"], r["vmap"], rtol=1e-5, atol=1e-6)
  assert outs[0]["shard"] == outs[1]["shard"]
  assert np.linalg.norm(outs[0]["vmap"]) > 0.1
