"""One of 2 local processes running the ``shard`` backend over both (``jax.distributed``).

    python tests/parallel/multi_process_script.py PROCESS_ID PORT [DEVICES_PER_PROCESS]

Each process exposes DEVICES_PER_PROCESS CPU devices; the ``clients`` mesh spans the
devices of both processes (gloo collectives over TCP on loopback). Fed-BBPT rounds on
the synthetic quadratic task of ``multi_device_script.py``; process 0 prints a JSON
report with the sharded result and the single-process ``vmap`` result.
"""

import json
import os
import sys

PROCESS_ID, PORT = int(sys.argv[1]), int(sys.argv[2])
os.environ["JAX_NUM_CPU_DEVICES"] = sys.argv[3] if len(sys.argv) > 3 else "2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{PORT}", num_processes=2,
                           process_id=PROCESS_ID, initialization_timeout=120)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from multi_device_script import NUM_CLIENTS, DIM, candidate_losses, clients  # noqa: E402

from fedbbpt_jax.federated import (make_client_optimizer, make_fedbbpt,  # noqa: E402
                                   make_local_update, make_server_optimizer)
from fedbbpt_jax.parallel import clients_mesh, replicate  # noqa: E402
from fedbbpt_jax.zo import HParams, make_estimator  # noqa: E402


def rounds(backend, n=3, cohort=5):
  local = make_local_update(candidate_losses, make_estimator("spsa_gc", 3),
                            make_client_optimizer("sgd"), num_steps=4, batch_size=4)
  alg = make_fedbbpt(local, make_server_optimizer("momentum", 1.0), NUM_CLIENTS, cohort,
                     backend)
  state, data = alg.init({"w": jnp.zeros(DIM)}), clients()
  if backend == "shard":
    state, data = replicate((state, data), clients_mesh())
  step = jax.jit(alg.apply)
  hp = HParams.create(lr=0.05, sigma=0.01, momentum=0.9)
  for _ in range(n):
    state, _ = step(state, data, jax.random.key(7), hp)
  w = state.params["w"]
  return np.asarray(w.addressable_data(0) if backend == "shard" else w).tolist()


def main():
  report = {"process": jax.process_index(), "processes": jax.process_count(),
            "global_devices": jax.device_count(), "local_devices": jax.local_device_count()}
  report["shard"] = rounds("shard")
  report["vmap"] = rounds("vmap")
  print(json.dumps(report), flush=True)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
