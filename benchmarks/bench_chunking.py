"""Chunked black-box calls: images/s of a zero-order step against chunk size, side by side.

A step of a cohort of C clients (vmap) with SPSA-GC's 4 candidates x batch 32 sends
one call of 128 x C images to the frozen EfficientNet-Lite0. Each row times that
step (a jitted one-step local update of every client) with the call whole and in
chunks of 32, 64, 128 and 256 images (``blackbox.chunk_size``), and the bare
forward of the best batch size (the physical limit). Every case runs in its own
process, all in this one run.

Printed: images/s per chunk size, the best chunk's speed-up over the whole call,
and the ZO step / best bare forward time-per-image ratio.

    python benchmarks/bench_chunking.py            # 64 and 96 px, cohorts 1, 4, 16 (~5 min)
    python benchmarks/bench_chunking.py --quick    # 64 px, cohorts 1 and 4
"""

from __future__ import annotations

import argparse
import json

from workers import best_time, spawn_worker  # benchmarks/workers.py

CHUNKS = (0, 32, 64, 128, 256)  # 0 = the whole call
FORWARD_BATCHES = (32, 64, 128, 256, 512)


def case_step(size: int, clients: int, chunk: int) -> dict:
  """Seconds of one ZO step of ``clients`` clients, calls chunked by ``chunk`` (0 = none)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from fedbbpt_jax.blackbox.chunked import ChunkedBlackBox
  from fedbbpt_jax.blackbox.zoo import make_image_classifier
  from fedbbpt_jax.federated import ClientData, make_client_optimizer, make_local_update
  from fedbbpt_jax.prompts import make_prompt
  from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
  from fedbbpt_jax.zo import HParams, make_estimator

  model = make_image_classifier("efficientnet_lite0", size)
  blackbox = ChunkedBlackBox(model, chunk) if chunk else model
  image_size = size * 3 // 4
  prompt = make_prompt("frame", size, image_size, resolution=8, epsilon=1.0, region="frame")
  label_map = np.zeros((blackbox.output_size, 10), np.float32)
  label_map[np.arange(100), np.arange(100) % 10] = 0.1
  task = VisualReprogramming(blackbox, prompt, image_size, jnp.asarray(label_map), 0.0, 3.0)
  estimator = make_estimator("spsa_gc", 2)
  local = make_local_update(task.candidate_losses, estimator, make_client_optimizer("sgd"), 1, 32)
  rng = np.random.default_rng(0)
  data = ClientData(x=jnp.asarray(rng.integers(0, 256, (clients, 64, 28, 28), np.uint8)),
                    y=jnp.asarray(rng.integers(0, 10, (clients, 64)), jnp.int32),
                    num_examples=jnp.full((clients,), 64, jnp.int32))
  hp = HParams.create(lr=0.01, sigma=0.01, momentum=0.9)
  params = prompt.init(jax.random.key(0))
  keys = jax.random.split(jax.random.key(1), clients)
  step = jax.jit(jax.vmap(lambda d, k: local(params, d, k, hp, jnp.asarray(0)).delta))
  return {"step_s": best_time(lambda: step(data, keys)),
          "images": clients * estimator.num_candidates * 32}


def case_forward(size: int, batch: int) -> dict:
  """Seconds of a bare forward of ``batch`` images."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from fedbbpt_jax.blackbox.zoo import make_image_classifier

  model = make_image_classifier("efficientnet_lite0", size)
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(batch, size, size, 3)), jnp.float32)
  forward = jax.jit(model.__call__)
  return {"forward_s": best_time(lambda: forward(x))}


def _spawn(spec: dict, devices: int = 1) -> dict:
  return spawn_worker(__file__, spec, devices)


def _worker(spec: dict) -> dict:
  if spec["case"] == "step":
    return case_step(spec["size"], spec["clients"], spec["chunk"])
  if spec["case"] == "forward":
    return case_forward(spec["size"], spec["batch"])
  raise ValueError(f"unknown case {spec['case']!r}")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--quick", action="store_true", help="64 px, cohorts 1 and 4")
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(_worker(json.loads(args.worker))))
    return
  sizes = (64,) if args.quick else (64, 96)
  cohorts = (1, 4) if args.quick else (1, 4, 16)
  for size in sizes:
    rates = {b: b / _spawn({"case": "forward", "size": size, "batch": b})["forward_s"]
             for b in FORWARD_BATCHES}
    best_batch = max(rates, key=rates.get)
    print(f"{size} px: bare forward img/s " + "  ".join(f"b={b}: {r:.0f}" for b, r in rates.items())
          + f"  (best b={best_batch})", flush=True)
    print(f"  {'clients':>7} {'images':>6} " + " ".join(
        f"{('whole' if c == 0 else f'chunk {c}'):>9}" for c in CHUNKS)
          + f" {'best/whole':>10} {'step/fwd':>8}", flush=True)
    for clients in cohorts:
      per_chunk = {}
      for chunk in CHUNKS:
        r = _spawn({"case": "step", "size": size, "clients": clients, "chunk": chunk})
        per_chunk[chunk] = r["images"] / r["step_s"]
      best = max(per_chunk, key=per_chunk.get)
      print(f"  {clients:>7} {r['images']:>6} "
            + " ".join(f"{per_chunk[c]:>9.0f}" for c in CHUNKS)
            + f" {per_chunk[best] / per_chunk[0]:>9.2f}x"
            + f" {rates[best_batch] / per_chunk[best]:>8.2f}",
            flush=True)
  print("(img/s of one ZO step; best/whole = best chunk size over the whole call; step/fwd = "
        "time per image of the best step over the best bare forward)")


if __name__ == "__main__":
  main()
