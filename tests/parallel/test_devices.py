"""The CPU device count can still be set after the whole library is imported."""

import os
import subprocess
import sys

SCRIPT = """
from jax._src import xla_bridge
import experiments.train, fedbbpt_jax.serve, fedbbpt_jax.train, fedbbpt_jax.zo
assert not xla_bridge.backends_are_initialized(), "importing the library started JAX"
import jax
from fedbbpt_jax.parallel.devices import ensure_cpu_devices
assert ensure_cpu_devices(3) == 3 == jax.device_count()
try:
  ensure_cpu_devices(2)
except RuntimeError as e:
  assert "config.parallel.cpu_devices=2" in str(e), e
else:
  raise AssertionError("a second, different count was accepted")
print("ok")
"""


def test_importing_the_library_leaves_the_device_count_open():
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                        env=env, cwd=root, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().endswith("ok")
