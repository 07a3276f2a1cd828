"""``flower/quick_supernode.py``: Flower's SuperNode with its message-loop sleeps capped.

The loopback deployments (``tests/flower/test_deployment*.py``) run their SuperNodes through
it; here, the cap itself and its refusal when Flower's loop changes shape.
"""

import subprocess
import sys
import time

import pytest

from fedbbpt_jax.flower import quick_supernode


def test_capped_time_caps_sleep_and_keeps_the_rest_of_time():
  capped = quick_supernode.capped_time(0.05)
  start = time.monotonic()
  capped.sleep(3.0)  # Flower's idle poll
  assert time.monotonic() - start < 1.0
  start = time.monotonic()
  capped.sleep(0.0)
  assert capped.monotonic is time.monotonic and capped.time is time.time
  assert time.monotonic() - start < 0.05


def test_install_caps_only_the_supernode_loop_and_refuses_an_unknown_layout():
  # In a fresh process: the cap is process-wide for Flower's module and must not leak here.
  code = ("import time\n"
          "from fedbbpt_jax.flower import quick_supernode\n"
          "from flwr.supernode import start_client_internal as loop\n"
          "quick_supernode.install(0.05)\n"
          "t = time.monotonic(); loop.time.sleep(3); waited = time.monotonic() - t\n"
          "assert waited < 1.0, waited\n"
          "assert time.sleep is not loop.time.sleep\n"
          "try:\n"
          "  quick_supernode.install(0.05)\n"  # now `time` is the capped namespace
          "except RuntimeError as e:\n"
          "  print('refused:', e)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "refused: flwr.supernode.start_client_internal has no module-level `time`" in out.stdout


@pytest.mark.parametrize("cap", [0.0, -1.0])
def test_a_cap_that_is_not_positive_is_refused(cap):
  with pytest.raises(ValueError, match="cap"):
    quick_supernode.capped_time(cap)
