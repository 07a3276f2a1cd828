"""What an 8-bit image API (``blackbox.wire_dtype='uint8'``) does to zero-order training.

The service's uint8 path maps a prompted pixel ``x`` to ``round(clip(x, 0, 1) * 255) / 255``
before the model. This script applies exactly that map in-process (the same numpy/JAX
rounding, half to even, then the same frozen EfficientNet-Lite0), so it needs no server,
and measures on the default Fashion-MNIST experiment (64 px canvas, frame prompt):

1. gradient estimates: cosine similarity between SPSA-GC's first-step estimates
   (K = 2 directions, the same random draws) with the float32 and the uint8 wire, at
   several perturbation sizes sigma, at the zero pattern (training's start, where the
   minus side is clipped at 0) and at a random interior pattern; the share of prompt
   pixels whose + and - perturbations round to the same level (the perturbation
   vanished there), and of loss differences that are exactly 0;
2. accuracy of short training runs with each wire at the default sigma and a larger one.

Usage::

    python benchmarks/uint8_wire_study.py [--rounds 3] [--trials 8] [--skip-training]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs.fmnist_effnet import get_config  # noqa: E402
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox  # noqa: E402
from fedbbpt_jax.federated.algorithms.client import sample_minibatch  # noqa: E402
from fedbbpt_jax.prompts import apply_prompt  # noqa: E402
from fedbbpt_jax.train import build as build_lib  # noqa: E402
from fedbbpt_jax.train import run  # noqa: E402
from fedbbpt_jax.zo import HParams, make_estimator  # noqa: E402


def uint8_wire(blackbox: SurrogateBlackBox) -> SurrogateBlackBox:
  """The same model seen through the service's uint8 wire (``round(x * 255) / 255``)."""
  quantise = lambda x: jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0) / 255.0
  return SurrogateBlackBox(blackbox.name, lambda v, x: blackbox._apply_fn(v, quantise(x)),
                           blackbox._variables, blackbox.input_shape, blackbox.output_size)


def gradient_study(sigmas: list[float], trials: int) -> None:
  """Prints cosine(float32 estimate, uint8 estimate) and vanishing shares per sigma."""
  config = get_config()
  config.baselines.local_only = False
  exp = build_lib.build_experiment(config)
  task_f32 = exp.task
  task_u8 = dataclasses.replace(task_f32, blackbox=uint8_wire(task_f32.blackbox))
  estimator = make_estimator("spsa_gc", config.zo.num_directions)
  data = jax.tree.map(lambda a: a[0], exp.clients)

  def estimates(params, key, sigma):
    hp = HParams.create(lr=0.0, sigma=sigma)
    k_batch, k_ask = jax.random.split(key)
    idx = sample_minibatch(k_batch, data.num_examples, data.y.shape[0], config.client.batch_size)
    batch = {"x": data.x[idx], "y": data.y[idx]}
    state = estimator.init(params, 1)
    cands, state = estimator.ask(k_ask, params, state, hp)
    out = []
    for task in (task_f32, task_u8):
      losses = task.candidate_losses(cands, batch)
      grad, _, _ = estimator.tell(params, cands, losses, state, hp)
      out.append((ravel_pytree(grad)[0], losses))
    # Vanished perturbations: prompt pixels whose +/- candidates give the same level.
    canvas = task_f32.canvas(batch["x"][:1])
    deltas = jax.vmap(lambda p: task_f32.prompt.apply(p, ()))(cands)
    levels = jnp.round(apply_prompt(canvas[None], deltas) * 255.0)
    k = config.zo.num_directions
    region = jnp.abs(task_f32.prompt.apply(jax.tree.map(jnp.ones_like, params), ())) > 0
    same = (levels[:k] == levels[k:]) & region[None]
    vanished = jnp.sum(same) / (k * jnp.sum(region))
    return out, vanished

  estimates = jax.jit(estimates)
  pattern = exp.init_params["pattern"]
  points = {"zero pattern (start)": exp.init_params,
            "interior U[0.3,0.7]": {"pattern": jax.random.uniform(
                jax.random.key(7), pattern.shape, minval=0.3, maxval=0.7)}}
  print(f"gradient estimates: SPSA-GC K={config.zo.num_directions}, batch "
        f"{config.client.batch_size}, canvas {config.blackbox.input_size}px, {trials} draws")
  print(f"{'point':<22} {'sigma':>6} {'cos(f32,u8)':>12} {'min cos':>8} "
        f"{'vanished px':>12} {'zero dL (u8)':>13}")
  for name, params in points.items():
    for sigma in sigmas:
      cosines, vanished, zero_diffs = [], [], 0
      for t in range(trials):
        ((g32, _), (g8, l8)), v = estimates(params, jax.random.key(1000 + t), sigma)
        g32, g8 = np.asarray(g32), np.asarray(g8)
        cosines.append(float(g32 @ g8 / (np.linalg.norm(g32) * np.linalg.norm(g8) + 1e-30)))
        vanished.append(float(v))
        k = config.zo.num_directions
        zero_diffs += int(np.sum(np.asarray(l8[:k]) == np.asarray(l8[k:])))
      print(f"{name:<22} {sigma:>6.3f} {np.mean(cosines):>12.3f} {np.min(cosines):>8.3f} "
            f"{100 * np.mean(vanished):>11.1f}% "
            f"{100 * zero_diffs / (trials * config.zo.num_directions):>12.1f}%", flush=True)


def accuracy_study(rounds: int, settings: list[tuple[str, float]]) -> None:
  """Prints the accuracy curve of short runs with each (wire, sigma)."""
  print(f"\nshort runs: default config, {rounds} rounds, 1000 test images")
  for wire, sigma in settings:
    config = get_config()
    config.train.rounds = rounds
    config.data.test_examples = 1000
    config.zo.sigma = sigma
    config.baselines.local_only = False
    t0 = time.time()
    summary = run(config, tempfile.mkdtemp(prefix="uint8_study_"), log=lambda s: None,
                  wrap_blackbox=uint8_wire if wire == "uint8" else None)
    print(f"wire {wire:<7} sigma {sigma:.3f}: zero-shot {100 * summary['zero_shot_accuracy']:.1f}% "
          f"-> final {100 * summary['final_accuracy']:.1f}% (best "
          f"{100 * summary['best_accuracy']:.1f}%)  {time.time() - t0:.0f}s", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--trials", type=int, default=8)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--sigmas", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05, 0.1])
  parser.add_argument("--skip-training", action="store_true")
  args = parser.parse_args()
  gradient_study(args.sigmas, args.trials)
  if not args.skip_training:
    accuracy_study(args.rounds, [("float32", 0.01), ("uint8", 0.01), ("uint8", 0.05),
                                 ("float32", 0.05)])


if __name__ == "__main__":
  main()
