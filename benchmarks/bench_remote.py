"""The model as a real API: per-step cost of the remote black box vs the local surrogate.

Starts its own service (``python -m fedbbpt_jax.serve``) on a free loopback port and
measures, on the smoke experiment (3 clients x 3 steps x 4 candidates x 8 images per
round) with the configured canvas size:

* time per local step, local surrogate vs the same model behind HTTP (ratio);
* host calls and HTTP requests per step (one host call; ``ceil(96 / max_batch)`` requests);
* throughput in images/s of 1 and of 8 concurrent client processes hammering the
  service with full batches, next to the local surrogate's own throughput.

Usage::

    python benchmarks/bench_remote.py [--input-size 64] [--max-batch 64] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs.fmnist_effnet import get_config  # noqa: E402
from fedbbpt_jax.blackbox.zoo import make_image_classifier  # noqa: E402
from fedbbpt_jax.serve.process import ServiceProcess  # noqa: E402
from fedbbpt_jax.train.build import build_experiment  # noqa: E402

CLIENT_SCRIPT = """
import sys, time
import numpy as np
from fedbbpt_jax.blackbox.remote import RemoteBlackBox
url, size, batch, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
bb = RemoteBlackBox(url, max_concurrency=2)
x = np.random.default_rng(0).uniform(size=(batch, size, size, 3)).astype(np.float32)
bb.predict(x)
print("ready", flush=True)
sys.stdin.readline()
start = time.time()
images = 0
while time.time() < start + seconds:
  bb.predict(x)
  images += batch
print(images, time.time() - start, flush=True)
"""


def seconds_per_step(url: str, input_size: int, rounds: int) -> tuple[float, dict]:
  """Mean seconds per local step of the smoke experiment (after a warm-up round)."""
  config = get_config("smoke")
  config.blackbox.input_size = input_size
  config.blackbox.url = url
  exp = build_experiment(config)
  step = jax.jit(exp.algorithm.apply)
  state = exp.algorithm.init(exp.init_params)
  state, m = step(state, exp.clients, exp.root_key, exp.hparams)
  float(m["train_loss"])
  meter = getattr(exp.task.blackbox, "meter", None)
  before = meter.as_dict() if meter else {}
  t0 = time.perf_counter()
  for _ in range(rounds):
    state, m = step(state, exp.clients, exp.root_key, exp.hparams)
    float(m["train_loss"])
  elapsed = time.perf_counter() - t0
  steps = rounds * config.client.local_steps
  counts = {k: (v - before[k]) / steps for k, v in meter.as_dict().items()} if meter else {}
  return elapsed / steps, counts


def client_throughput(url: str, input_size: int, batch: int, processes: int,
                      seconds: float) -> float:
  """Images/s of ``processes`` concurrent client processes sending full batches."""
  procs = [subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, url, str(input_size),
                             str(batch), str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
           for _ in range(processes)]
  for p in procs:   # every process has imported JAX, connected and sent one batch
    if p.stdout.readline().strip() != "ready":
      raise RuntimeError("a client process failed to start")
  for p in procs:   # then all start together
    p.stdin.write("go\n")
    p.stdin.flush()
  outputs = [p.communicate()[0].split() for p in procs]
  if any(p.returncode for p in procs):
    raise RuntimeError("a client process failed")
  images = sum(int(o[0]) for o in outputs)
  wall = max(float(o[1]) for o in outputs)
  return images / wall


def local_throughput(input_size: int, batch: int, seconds: float) -> float:
  """Images/s of the local surrogate's jitted forward at ``batch``."""
  forward = jax.jit(make_image_classifier("efficientnet_lite0", input_size))
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(batch, input_size, input_size, 3)),
                  jnp.float32)
  forward(x).block_until_ready()
  calls, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds:
    forward(x).block_until_ready()
    calls += 1
  return calls * batch / (time.perf_counter() - t0)


def main() -> None:
  """Prints the comparison table."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--input-size", type=int, default=64)
  parser.add_argument("--max-batch", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--seconds", type=float, default=8.0)
  args = parser.parse_args()
  print(f"device: {jax.devices()[0]}  cpus: {os.cpu_count()}  canvas: {args.input_size}px  "
        f"service max batch: {args.max_batch}")
  with ServiceProcess(input_size=args.input_size, max_batch=args.max_batch,
                      extra_args=("--warmup",), start_timeout=300) as service:
    local, _ = seconds_per_step("", args.input_size, args.rounds)
    remote, counts = seconds_per_step(service.url, args.input_size, args.rounds)
    print("smoke step (3 clients x 4 candidates x 8 images = 96 images):")
    print(f"  local surrogate  {1000 * local:8.1f} ms/step")
    print(f"  remote (HTTP)    {1000 * remote:8.1f} ms/step   ratio remote/local "
          f"{remote / local:.2f}x")
    print(f"  per step: {counts['host_calls']:.0f} host call, {counts['http_requests']:.0f} "
          f"HTTP requests (ceil(96/{args.max_batch})), {counts['http_retries']:.0f} retries")
    one = client_throughput(service.url, args.input_size, args.max_batch, 1, args.seconds)
    eight = client_throughput(service.url, args.input_size, args.max_batch, 8, args.seconds)
  own = local_throughput(args.input_size, args.max_batch, args.seconds)
  print(f"throughput, batches of {args.max_batch}:")
  print(f"  local surrogate, in process   {own:8.1f} images/s")
  print(f"  service, 1 client process     {one:8.1f} images/s")
  print(f"  service, 8 client processes   {eight:8.1f} images/s")


if __name__ == "__main__":
  main()
