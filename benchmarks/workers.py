"""What every benchmark script shares: timing, and running one case in a fresh process.

A CPU device count is fixed when JAX starts, so each case runs in its own Python
process (``spawn_worker``), which prints its result as the last line of JSON.
Imported as ``workers`` by the scripts (they run as ``python benchmarks/bench_*.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

REPEATS = 3


def best_time(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
  """Smallest wall time of ``fn()`` over ``repeats`` calls (after one warm-up)."""
  import jax
  jax.block_until_ready(fn())
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
  return best


def spawn_worker(script: str, spec: dict, devices: int = 1) -> dict:
  """Runs ``script --worker <spec as JSON>`` with ``devices`` CPU devices; returns its JSON."""
  env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices))
  env.pop("XLA_FLAGS", None)
  script = os.path.abspath(script)
  proc = subprocess.run([sys.executable, script, "--worker", json.dumps(spec)],
                        capture_output=True, text=True, env=env, check=False,
                        cwd=os.path.dirname(os.path.dirname(script)))
  if proc.returncode:
    raise SystemExit(f"worker {spec} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])
