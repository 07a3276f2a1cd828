"""How close a zero-order round comes to the physical limit, and what batching buys.

Every figure is measured side by side in this one run; each case runs in its own
process (a CPU device count is fixed when JAX starts):

* ZO step efficiency: one local step (all SPSA-GC candidates x batch through the
  frozen EfficientNet-Lite0) against a bare batched forward of the same number
  of images. The forward is the physical limit of a step; the ratio is the
  overhead of prompts, estimator and optimizer.
* Cohort speed-up: a round of 10 clients x 10 candidates per step on a small
  frozen MLP surrogate (per-call overhead dominates) and on EfficientNet-Lite0,
  ``loop`` (Python loops over clients, local steps and candidates, one jitted
  black-box call per candidate, as the reference codes run) against ``vmap``.
* Vmapped sweep: S=4 seeds in one program against 4 runs one after another, per
  round (same small MLP and EfficientNet rounds) and end to end (4 x ``train.run``
  against one ``run_vmapped`` of the smoke config, 3 rounds, compile included).
* Both cores: the cohort sharded over 2 CPU devices against ``vmap`` on 1, same
  work, EfficientNet-Lite0 at 96 px (and 64 px, the demo's size).
* Scaling: round time and peak memory against cohort size (1-64) and number of
  candidates, EfficientNet-Lite0 at 64 px, one local step.
* Compile: first-round time against a later round, and the number of programs
  compiled after 3 rounds (1 = later rounds reuse it).

Usage::

    python benchmarks/bench_cohort.py            # the whole table (~4 min on 2 cores)
    python benchmarks/bench_cohort.py --quick    # fewer sizes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from workers import REPEATS, best_time, spawn_worker  # benchmarks/workers.py



def _image_setup(input_size: int, clients: int, directions: int, batch: int, steps: int,
                 backend: str):
  """A Fed-BBPT round on random Fashion-MNIST-shaped data, EfficientNet-Lite0 black box."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from fedbbpt_jax.blackbox.zoo import make_image_classifier
  from fedbbpt_jax.federated import (ClientData, make_client_optimizer, make_fedbbpt,
                                     make_local_update, make_server_optimizer)
  from fedbbpt_jax.prompts import make_prompt
  from fedbbpt_jax.tasks import VisualReprogramming
  from fedbbpt_jax.zo import HParams, make_estimator

  image_size = input_size * 3 // 4
  blackbox = make_image_classifier("efficientnet_lite0", input_size)
  prompt = make_prompt("frame", input_size, image_size, resolution=8, epsilon=1.0,
                       region="frame")
  label_map = np.zeros((blackbox.output_size, 10), np.float32)
  label_map[np.arange(100), np.arange(100) % 10] = 0.1
  task = VisualReprogramming(blackbox, prompt, image_size, jnp.asarray(label_map), 0.0, 3.0)
  estimator = make_estimator("spsa_gc", directions)
  local = make_local_update(task.candidate_losses, estimator, make_client_optimizer("sgd"),
                            steps, batch)
  rng = np.random.default_rng(0)
  data = ClientData(x=jnp.asarray(rng.integers(0, 256, (clients, 64, 28, 28), np.uint8)),
                    y=jnp.asarray(rng.integers(0, 10, (clients, 64)), jnp.int32),
                    num_examples=jnp.full((clients,), 64, jnp.int32))
  alg = make_fedbbpt(local, make_server_optimizer("sgd"), clients, clients, backend)
  hp = HParams.create(lr=0.01, sigma=0.01, momentum=0.9)
  params = prompt.init(jax.random.key(0))
  return task, estimator, local, alg, data, hp, params


def case_zo_step(input_size: int) -> dict:
  """One local step against a bare forward of the same images."""
  import jax
  import jax.numpy as jnp

  directions, batch, steps = 2, 32, 10
  task, est, local, _, data, hp, params = _image_setup(input_size, 1, directions, batch, steps,
                                                       "vmap")
  client = jax.tree.map(lambda a: a[0], data)
  run = jax.jit(lambda p, k: local(p, client, k, hp, jnp.asarray(0)))
  key = jax.random.key(1)
  step_s = best_time(lambda: run(params, key).delta) / steps
  images = est.num_candidates * batch
  x = task.canvas(client.x[jnp.arange(images) % client.x.shape[0]])
  forward = jax.jit(task.blackbox.__call__)
  forward_s = best_time(lambda: forward(x))
  return {"step_s": step_s, "forward_s": forward_s, "images": images}


def case_round(input_size: int, clients: int, directions: int, batch: int, steps: int,
               backend: str) -> dict:
  """Time of the first and of later rounds, programs compiled, peak memory."""
  import jax

  from fedbbpt_jax.parallel import replicate

  _, est, _, alg, data, hp, params = _image_setup(input_size, clients, directions, batch, steps,
                                                  backend)
  state = alg.init(params)
  if backend == "shard":
    state, data = replicate((state, data))
  step = alg.apply if backend == "loop" else jax.jit(alg.apply)
  key = jax.random.key(0)
  t0 = time.perf_counter()
  state, _ = step(state, data, key, hp)
  jax.block_until_ready(state)
  first_s = time.perf_counter() - t0
  times = []
  for _ in range(REPEATS):
    t0 = time.perf_counter()
    state, _ = step(state, data, key, hp)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
  programs = step._cache_size() if hasattr(step, "_cache_size") else None
  return {"first_s": first_s, "round_s": min(times), "programs": programs,
          "images": clients * steps * est.num_candidates * batch,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "devices": jax.device_count()}


def _small_setup(backend: str):
  """10 clients x 10 candidates per step on a small frozen MLP (overhead-bound)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from fedbbpt_jax.federated import (ClientData, make_client_optimizer, make_fedbbpt,
                                     make_local_update, make_server_optimizer)
  from fedbbpt_jax.zo import HParams, make_estimator

  rng = np.random.default_rng(0)
  w1 = jnp.asarray(rng.normal(size=(64, 128)) / 8, jnp.float32)
  w2 = jnp.asarray(rng.normal(size=(128, 10)) / 11, jnp.float32)

  def candidate_losses(candidates, batch):
    def loss(p):
      h = jnp.tanh((batch["x"] + p["prompt"]) @ w1)
      logits = jax.lax.stop_gradient(h @ w2)
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch["y"].shape[0]), batch["y"]])
    return jax.vmap(loss)(candidates)

  clients, steps, batch = 10, 10, 32
  local = make_local_update(candidate_losses, make_estimator("spsa", 5),
                            make_client_optimizer("sgd"), steps, batch)
  data = ClientData(x=jnp.asarray(rng.normal(size=(clients, 128, 64)), jnp.float32),
                    y=jnp.asarray(rng.integers(0, 10, (clients, 128)), jnp.int32),
                    num_examples=jnp.full((clients,), 128, jnp.int32))
  alg = make_fedbbpt(local, make_server_optimizer("sgd"), clients, clients, backend)
  hp = HParams.create(lr=0.01, sigma=0.01)
  return alg, data, hp, {"prompt": jnp.zeros(64)}


def case_small_cohort(backend: str) -> dict:
  """10 clients x 10 candidates per step on a small frozen MLP (overhead-bound)."""
  import jax

  alg, data, hp, params = _small_setup(backend)
  state = alg.init(params)
  step = alg.apply if backend == "loop" else jax.jit(alg.apply)
  key = jax.random.key(0)
  return {"round_s": best_time(lambda: step(state, data, key, hp)[0])}


def case_sweep_round(model: str, members: int = 4) -> dict:
  """One round of S seeds in one vmapped program against S single-seed rounds."""
  import jax
  import jax.numpy as jnp

  from fedbbpt_jax.train.vmapped_sweep import sweep_step

  if model == "mlp":
    alg, data, hp, params = _small_setup("vmap")
  else:
    _, _, _, alg, data, hp, params = _image_setup(64, 4, 2, 8, 2, "vmap")
  one = jax.jit(alg.apply)
  state = alg.init(params)
  keys = [jax.random.key(s) for s in range(members)]
  single_s = best_time(lambda: [one(state, data, k, hp)[0] for k in keys])
  step, _ = sweep_step(alg)
  stacked = jax.tree.map(lambda a: jnp.stack([a] * members), state)
  hps = jax.tree.map(lambda a: jnp.stack([a] * members), hp)
  swept_s = best_time(lambda: step(stacked, data, jnp.stack(keys), hps)[0])
  return {"sequential_s": single_s, "vmapped_s": swept_s}


def case_sweep_runs(members: int = 4) -> dict:
  """End to end: S x ``train.run`` against one ``run_vmapped`` (smoke config, 3 rounds)."""
  import tempfile

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs.fmnist_effnet import get_config  # pylint: disable=g-import-not-at-top
  from fedbbpt_jax.train import run
  from fedbbpt_jax.train.vmapped_sweep import run_vmapped

  def config(seed):
    c = get_config("smoke")
    c.seed, c.train.rounds = seed, 3
    c.baselines.zero_shot = c.baselines.local_only = False
    return c

  root = tempfile.mkdtemp(prefix="bench_sweep_")
  quiet = lambda s: None  # noqa: E731
  t0 = time.perf_counter()
  for s in range(members):
    run(config(s), os.path.join(root, f"run{s}"), log=quiet)
  sequential_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  run_vmapped([config(s) for s in range(members)],
              [os.path.join(root, f"swept{s}") for s in range(members)], log=quiet)
  return {"sequential_s": sequential_s, "vmapped_s": time.perf_counter() - t0}


def _worker(spec: dict) -> dict:
  if spec["case"] == "zo_step":
    return case_zo_step(spec["size"])
  if spec["case"] == "round":
    return case_round(spec["size"], spec["clients"], spec["directions"], spec["batch"],
                      spec["steps"], spec["backend"])
  if spec["case"] == "small_cohort":
    return case_small_cohort(spec["backend"])
  if spec["case"] == "sweep_round":
    return case_sweep_round(spec["model"])
  if spec["case"] == "sweep_runs":
    return case_sweep_runs()
  raise ValueError(f"unknown case {spec['case']!r}")


def _spawn(spec: dict, devices: int = 1) -> dict:
  return spawn_worker(__file__, spec, devices)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--quick", action="store_true", help="fewer cohort sizes")
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(_worker(json.loads(args.worker))))
    return

  print("ZO step efficiency (SPSA-GC K=2: 4 candidates x batch 32 = 128 images per step)")
  print(f"  {'px':>4} {'step ms':>9} {'forward ms':>11} {'ratio':>6}")
  for size in (64, 96):
    r = _spawn({"case": "zo_step", "size": size})
    print(f"  {size:>4} {1e3 * r['step_s']:>9.1f} {1e3 * r['forward_s']:>11.1f} "
          f"{r['step_s'] / r['forward_s']:>6.2f}", flush=True)

  print("\nCohort speed-up, loop / vmap, 10 clients x 10 candidates per step, 10 steps")
  loop = _spawn({"case": "small_cohort", "backend": "loop"})["round_s"]
  vmap = _spawn({"case": "small_cohort", "backend": "vmap"})["round_s"]
  print(f"  small MLP surrogate     loop {1e3 * loop:8.1f} ms  vmap {1e3 * vmap:8.1f} ms  "
        f"speed-up {loop / vmap:5.1f}x", flush=True)
  spec = {"case": "round", "size": 64, "clients": 10, "directions": 5, "batch": 8, "steps": 2}
  loop = _spawn(dict(spec, backend="loop"))["round_s"]
  vmap = _spawn(dict(spec, backend="vmap"))["round_s"]
  print(f"  EfficientNet 64 px, b=8 loop {loop:8.2f} s   vmap {vmap:8.2f} s   "
        f"speed-up {loop / vmap:5.2f}x", flush=True)

  print("\nVmapped sweep: S=4 seeds in one program / 4 one after another")
  for model, label in (("mlp", "small MLP round (10 clients)"),
                       ("effnet", "EfficientNet 64 px round (4 clients, K=2, b=8, 2 steps)")):
    r = _spawn({"case": "sweep_round", "model": model})
    print(f"  {label:<56} 4 x 1 {1e3 * r['sequential_s']:8.1f} ms  S=4 "
          f"{1e3 * r['vmapped_s']:8.1f} ms  speed-up {r['sequential_s'] / r['vmapped_s']:5.2f}x",
          flush=True)
  r = _spawn({"case": "sweep_runs"})
  print(f"  {'smoke config end to end, 3 rounds, compile included':<56} 4 runs "
        f"{r['sequential_s']:7.1f} s   S=4 {r['vmapped_s']:7.1f} s   "
        f"speed-up {r['sequential_s'] / r['vmapped_s']:5.2f}x", flush=True)

  print("\nBoth cores: 'shard' over 2 CPU devices / 'vmap' on 1 (4 clients, K=2, batch 32, "
        "2 steps)")
  for size in (64, 96):
    spec = {"case": "round", "size": size, "clients": 4, "directions": 2, "batch": 32,
            "steps": 2}
    one = _spawn(dict(spec, backend="vmap"), devices=1)
    two = _spawn(dict(spec, backend="shard"), devices=2)
    print(f"  {size:>3} px  1 device {one['round_s']:6.2f} s  2 devices {two['round_s']:6.2f} s"
          f"  speed-up {one['round_s'] / two['round_s']:4.2f}x  "
          f"({two['images'] / two['round_s']:.0f} img/s)", flush=True)

  print("\nScaling, EfficientNet 64 px, 1 local step, batch 8, vmap")
  print(f"  {'clients':>7} {'cands':>5} {'round s':>8} {'img/s':>6} {'peak MB':>8} "
        f"{'1st s':>6} {'programs':>8}")
  cohorts = (1, 8, 64) if args.quick else (1, 2, 4, 8, 16, 32, 64)
  grid = [(c, 2) for c in cohorts] + [(8, k) for k in (1, 5, 10)]
  for clients, directions in grid:
    r = _spawn({"case": "round", "size": 64, "clients": clients, "directions": directions,
                "batch": 8, "steps": 1, "backend": "vmap"})
    cands = 2 * directions
    print(f"  {clients:>7} {cands:>5} {r['round_s']:>8.3f} {r['images'] / r['round_s']:>6.0f} "
          f"{r['peak_rss_mb']:>8.0f} {r['first_s']:>6.2f} {r['programs']:>8}", flush=True)


if __name__ == "__main__":
  main()
