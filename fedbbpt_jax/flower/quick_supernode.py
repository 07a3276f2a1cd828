"""``flower-supernode`` with shorter idle waits, for SuperNodes on loopback.

    python -m fedbbpt_jax.flower.quick_supernode [flower-supernode arguments]

Flower's SuperNode (1.42) polls the SuperLink for a message, and when there is none
sleeps a fixed 3 s before asking again; once it has handed a message to its ClientApp it
checks for the reply every 0.5 s. Every message of a run therefore waits 1.5 s on average
(3 s at worst) before a node even sees it, and a deployment sends many (discovery, every
set-up statistic, every round's training and evaluation). On one machine, where a poll
costs a loopback call, that idle time dominates a small run.

This module runs Flower's own SuperNode entry point unchanged, except that the sleeps of
its message loop (``flwr.supernode.start_client_internal``) are capped at
``POLL_SECONDS``. Nothing else differs: the same gRPC protocol, node registration,
heartbeats, ClientApp processes and node config. ``loopback.LoopbackFederation`` starts
its SuperNodes with it (``quick_nodes=True``, the default); a deployment across machines
runs Flower's ``flower-supernode`` as it is (docs/deployment/flower.md).
"""

from __future__ import annotations

import sys
import time
import types

POLL_SECONDS = 0.2  # the longest sleep of the SuperNode's message loop here


def capped_time(cap: float) -> types.SimpleNamespace:
  """The ``time`` module's functions, with ``sleep`` capped at ``cap`` seconds.

  Raises:
    ValueError: ``cap`` is not positive (the loop would spin).
  """
  if not cap > 0:
    raise ValueError(f"the sleep cap must be positive seconds, got cap={cap}")
  names = {name: getattr(time, name) for name in dir(time) if not name.startswith("__")}
  return types.SimpleNamespace(**{**names, "sleep": lambda seconds: time.sleep(min(seconds,
                                                                                   cap))})


def install(cap: float = POLL_SECONDS) -> None:
  """Caps the sleeps of the SuperNode's message loop (this process only).

  Raises:
    RuntimeError: this Flower's SuperNode loop no longer sleeps through a module-level
      ``time`` (the Flower version changed): nothing is patched.
  """
  from flwr.supernode import start_client_internal  # pylint: disable=import-outside-toplevel
  if getattr(start_client_internal, "time", None) is not time:
    raise RuntimeError("flwr.supernode.start_client_internal has no module-level `time` to "
                       "cap; this Flower version needs `flower-supernode` itself")
  start_client_internal.time = capped_time(cap)


def main() -> None:
  install()
  from flwr.supernode.cli import flower_supernode  # pylint: disable=import-outside-toplevel
  sys.argv[0] = "flower-supernode"
  sys.exit(flower_supernode())


if __name__ == "__main__":
  main()
