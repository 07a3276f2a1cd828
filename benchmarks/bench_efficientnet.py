"""Throughput of the jitted EfficientNet-Lite0 forward pass on the current device.

Compares the shifted multiply-add depthwise convolution (the default) with
XLA's stock grouped convolution (``feature_group_count``) at 64, 96 and 224 px,
batch 64, float32.

On some Linux VMs first-touch page faults are expensive, and XLA's per-call
buffers larger than glibc's mmap threshold are mapped and unmapped on every
call. ``--tune-malloc`` calls ``mallopt`` before JAX starts so that freed memory
is kept and reused, which shows how much of the time those faults take.

Usage::

    python benchmarks/bench_efficientnet.py [--batch 64] [--sizes 64 96 224] [--tune-malloc]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models import EfficientNetLite0, load_efficientnet_lite0

# glibc mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def tune_glibc_malloc() -> bool:
    """Keeps freed heap memory instead of returning it to the OS (glibc only).

    Equivalent to ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=<large>``; must run before JAX creates its thread
    pool.

    Returns:
        Whether every ``mallopt`` call succeeded.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**30))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def images_per_second(
    model: EfficientNetLite0,
    variables: dict[str, Any],
    size: int,
    batch: int,
    min_seconds: float,
) -> float:
    """Measures steady-state images/s of ``jit(model.apply)``.

    Compiles ahead of time, runs one warm-up call, then times calls until
    ``min_seconds`` have passed (at least one call).

    Args:
        model: The module to run.
        variables: Its Flax variables.
        size: Square input resolution.
        batch: Batch size.
        min_seconds: Minimum timed duration.

    Returns:
        Images per second.
    """
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, size, size, 3)), jnp.float32)
    forward = jax.jit(model.apply).lower(variables, x).compile()
    forward(variables, x).block_until_ready()
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < min_seconds:
        forward(variables, x).block_until_ready()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def main() -> None:
    """Prints a throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 224])
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--tune-malloc", action="store_true", help="apply glibc mallopt tuning")
    parser.add_argument("--skip-grouped", action="store_true", help="time the fast path only")
    args = parser.parse_args()

    tuned = tune_glibc_malloc() if args.tune_malloc else False
    _, variables = load_efficientnet_lite0()
    variables = jax.device_put(variables)
    shifted = EfficientNetLite0(depthwise_impl="shifted")
    grouped = EfficientNetLite0(depthwise_impl="grouped")

    print(
        f"device: {jax.devices()[0]} x{jax.device_count()}  batch: {args.batch}  "
        f"dtype: float32  malloc tuned: {tuned}"
    )
    print(f"{'size':>5} {'shifted img/s':>14} {'grouped img/s':>14} {'speed-up':>9}")
    for size in args.sizes:
        fast = images_per_second(shifted, variables, size, args.batch, args.min_seconds)
        if args.skip_grouped:
            print(f"{size:>5} {fast:>14.1f} {'-':>14} {'-':>9}", flush=True)
            continue
        slow = images_per_second(grouped, variables, size, args.batch, args.min_seconds)
        print(f"{size:>5} {fast:>14.1f} {slow:>14.1f} {fast / slow:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
