"""Cross-device rounds: wall time and peak memory of Poisson cohorts of 100, 200 and 400.

The config is ``configs/fmnist_cross_device.py`` (1,000 Fashion-MNIST clients,
EfficientNet-Lite0 at 64 px, one local step of SPSA-GC on 16 examples, DP-FedAvg with
Poisson sampling), mode ``''``, ``cohort200`` and ``cohort400``. Each cohort size runs
in its own process (a fresh peak RSS): it builds the experiment (data, partition, the
label mapping's set-up queries), then runs ``ROUNDS`` jitted rounds; the first round's
time includes the compile. Reported per size: the capacity and chunk of the cohort, the
members of each round, the first round (compile + run), the later rounds' mean, the
seconds per member, and the process's peak RSS after the rounds.

Usage::

    python benchmarks/bench_cross_device.py
    python benchmarks/bench_cross_device.py --rounds=2 --modes=cohort400
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from workers import spawn_worker  # benchmarks/workers.py

MODES = ("", "cohort200", "cohort400")
ROUNDS = 3


def _worker(spec: dict) -> dict:
  sys.path.insert(0, ".")  # the checkout this script is in (its cwd), before any install
  import fedbbpt_jax  # noqa: F401  (imported from this checkout first)
  import jax  # pylint: disable=import-outside-toplevel

  from configs import fmnist_cross_device  # pylint: disable=import-outside-toplevel
  from fedbbpt_jax.train.build import build_experiment  # pylint: disable=import-outside-toplevel

  t0 = time.perf_counter()
  config = fmnist_cross_device.get_config(spec["mode"])
  exp = build_experiment(config)
  build_seconds = time.perf_counter() - t0
  rss_after_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  step = jax.jit(exp.algorithm.apply)
  state = exp.algorithm.init(exp.init_params)
  times, members = [], []
  for _ in range(spec["rounds"]):
    t = time.perf_counter()
    state, metrics = step(state, exp.clients, exp.root_key, exp.hparams)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t)
    members.append(int(metrics["participants"]))
  later = times[1:] or times
  select = exp.algorithm.select
  return {"mode": spec["mode"] or "cohort100", "expected": exp.cohort_size,
          "slots": select.slots, "chunk": exp.algorithm.partial_chunk, "members": members,
          "build_s": round(build_seconds, 1), "first_round_s": round(times[0], 2),
          "later_round_s": round(sum(later) / len(later), 2),
          "s_per_member": round(sum(later) / sum(members[1:] or members), 4),
          "rss_after_build_mib": round(rss_after_build), "peak_rss_mib":
              round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--rounds", type=int, default=ROUNDS)
  parser.add_argument("--modes", default=",".join(m or "cohort100" for m in MODES))
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(_worker(json.loads(args.worker))))
    return
  print(f"{'cohort':>10} {'slots':>5} {'chunk':>5} {'members':>16} {'build s':>8} "
        f"{'round 1 s':>9} {'later s':>8} {'s/member':>8} {'peak RSS MiB':>12}")
  for mode in args.modes.split(","):
    mode = "" if mode == "cohort100" else mode
    r = spawn_worker(__file__, {"mode": mode, "rounds": args.rounds})
    print(f"{r['mode']:>10} {r['slots']:>5} {r['chunk']:>5} {str(r['members']):>16} "
          f"{r['build_s']:>8} {r['first_round_s']:>9} {r['later_round_s']:>8} "
          f"{r['s_per_member']:>8} {r['peak_rss_mib']:>12}", flush=True)


if __name__ == "__main__":
  main()
