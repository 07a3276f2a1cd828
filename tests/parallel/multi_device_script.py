"""Run in its own process with 8 CPU devices by test_backends.py; prints a JSON report.

Fed-BBPT, local-only and DFedSAM-MGS (ZO-SAM steps, 2 gossip steps on a ring) on a
synthetic quadratic task, with every cohort backend; a vmapped sweep (3 members: seeds
and learning rates) with the vmap and shard backends.
"""

import json
import os
import sys

os.environ["JAX_NUM_CPU_DEVICES"] = sys.argv[1] if len(sys.argv) > 1 else "8"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fedbbpt_jax.federated import (ClientData, RoundCost, StepHooks,  # noqa: E402
                                   make_client_optimizer, make_dfedsam, make_fedbbpt,
                                   make_local_only, make_local_update, make_server_optimizer)
from fedbbpt_jax.federated.topology import mixing_matrix  # noqa: E402
from fedbbpt_jax.parallel import replicate  # noqa: E402
from fedbbpt_jax.zo import HParams, make_estimator  # noqa: E402

NUM_CLIENTS, MAX_N, DIM = 11, 12, 5  # cohorts of 5 and 11 clients both pad on 8 devices


def clients() -> ClientData:
  rng = np.random.default_rng(0)
  targets = rng.normal(size=(NUM_CLIENTS, DIM)).astype(np.float32)
  x = targets[:, None, :] + 0.1 * rng.normal(size=(NUM_CLIENTS, MAX_N, DIM)).astype(np.float32)
  n = rng.integers(3, MAX_N + 1, size=NUM_CLIENTS).astype(np.int32)
  return ClientData(x=jnp.asarray(x), y=jnp.zeros((NUM_CLIENTS, MAX_N), jnp.int32),
                    num_examples=jnp.asarray(n))


def candidate_losses(candidates, batch):
  return jax.vmap(lambda p: jnp.mean(jnp.sum((batch["x"] - p["w"]) ** 2, -1)))(candidates)


def run(algorithm_name: str, backend: str, cohort: int, rounds: int = 3):
  sam = StepHooks(sam_rho=0.05 if algorithm_name == "dfedsam" else 0.0)
  local = make_local_update(candidate_losses, make_estimator("spsa_gc", 3),
                            make_client_optimizer("sgd"), num_steps=4, batch_size=4, hooks=sam)
  traces = []

  def counted(*args):
    traces.append(1)
    return local(*args)

  if algorithm_name == "fedbbpt":
    alg = make_fedbbpt(counted, make_server_optimizer("momentum", 1.0), NUM_CLIENTS, cohort,
                       backend)
  elif algorithm_name == "dfedsam":
    w = np.stack([mixing_matrix("ring", NUM_CLIENTS)] * rounds)
    alg = make_dfedsam(counted, w, 2, "train_then_mix", RoundCost(NUM_CLIENTS, 24, 4), backend)
  else:
    alg = make_local_only(counted, NUM_CLIENTS, backend)
  step = alg.apply if backend == "loop" else jax.jit(alg.apply)
  state = alg.init({"w": jnp.zeros(DIM)})
  data = clients()
  if backend == "shard":
    state, data = replicate((state, data))
  hp = HParams.create(lr=0.05, sigma=0.01, momentum=0.9)
  state, _ = step(state, data, jax.random.key(7), hp)
  traces_after_first_round = len(traces)
  for _ in range(rounds - 1):
    state, _ = step(state, data, jax.random.key(7), hp)
  return np.asarray(state.params["w"]).tolist(), len(traces) - traces_after_first_round


def sweep(backend: str, rounds: int = 3):
  """A 3-member vmapped sweep vs the members run one by one; traces across rounds."""
  from fedbbpt_jax.train.vmapped_sweep import sweep_step  # noqa: E402  pylint: disable=g-import-not-at-top
  local = make_local_update(candidate_losses, make_estimator("spsa_gc", 3),
                            make_client_optimizer("sgd"), num_steps=4, batch_size=4)
  alg = make_fedbbpt(local, make_server_optimizer("momentum", 1.0), NUM_CLIENTS, 5, backend)
  seeds, lrs = (7, 8, 7), (0.05, 0.05, 0.02)
  hps = [HParams.create(lr=lr, sigma=0.01, momentum=0.9) for lr in lrs]
  stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)  # noqa: E731
  data = clients()
  init = alg.init({"w": jnp.zeros(DIM)})
  step, traces = sweep_step(alg)
  state, keys, hp = stack([init] * 3), jnp.stack([jax.random.key(s) for s in seeds]), stack(hps)
  d = data
  if backend == "shard":
    state, d = replicate((state, data))
  for _ in range(rounds):
    state, _ = step(state, d, keys, hp)
  separate = []
  one = jax.jit(alg.apply)
  for seed, h in zip(seeds, hps):
    s, d = init, data
    if backend == "shard":
      s, d = replicate((s, d))
    for _ in range(rounds):
      s, _ = one(s, d, jax.random.key(seed), h)
    separate.append(np.asarray(s.params["w"]).tolist())
  return np.asarray(state.params["w"]).tolist(), separate, len(traces)


def main():
  report = {"devices": jax.device_count()}
  for name, cohort in (("fedbbpt", 5), ("local_only", NUM_CLIENTS), ("dfedsam", NUM_CLIENTS)):
    for backend in ("vmap", "shard", "loop"):
      report[f"{name}/{cohort}/{backend}"] = run(name, backend, cohort)
  for backend in ("vmap", "shard"):
    report[f"sweep/{backend}"] = sweep(backend)
  print(json.dumps(report))


if __name__ == "__main__":
  main()
