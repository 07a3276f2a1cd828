"""Throughput of the jitted EfficientNet-Lite0 forward pass on the current device.

Compares the shifted multiply-add depthwise convolution (the default) with
XLA's stock grouped convolution (``feature_group_count``) at 64, 96 and 224 px,
batch 64, float32.

Usage::

    python benchmarks/bench_efficientnet.py [--batch 64] [--sizes 64 96 224]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models import EfficientNetLite0, load_efficientnet_lite0


def images_per_second(
    model: EfficientNetLite0,
    variables: dict[str, Any],
    size: int,
    batch: int,
    min_seconds: float,
) -> float:
    """Measures steady-state images/s of ``jit(model.apply)``.

    Args:
        model: The module to run.
        variables: Its Flax variables.
        size: Square input resolution.
        batch: Batch size.
        min_seconds: Minimum timed duration (at least two timed calls).

    Returns:
        Images per second.
    """
    forward = jax.jit(model.apply)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, 3)), jnp.float32)
    forward(variables, x).block_until_ready()  # compile
    forward(variables, x).block_until_ready()  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < min_seconds:
        forward(variables, x).block_until_ready()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def main() -> None:
    """Prints a throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 224])
    parser.add_argument("--min-seconds", type=float, default=2.0)
    args = parser.parse_args()

    _, variables = load_efficientnet_lite0()
    variables = jax.device_put(variables)
    shifted = EfficientNetLite0(depthwise_impl="shifted")
    grouped = EfficientNetLite0(depthwise_impl="grouped")

    print(f"device: {jax.devices()[0]}  batch: {args.batch}  dtype: float32")
    print(f"{'size':>5} {'shifted img/s':>14} {'grouped img/s':>14} {'speed-up':>9}")
    for size in args.sizes:
        fast = images_per_second(shifted, variables, size, args.batch, args.min_seconds)
        slow = images_per_second(grouped, variables, size, args.batch, args.min_seconds)
        print(f"{size:>5} {fast:>14.1f} {slow:>14.1f} {fast / slow:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
