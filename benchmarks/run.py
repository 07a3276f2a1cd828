"""Runs every ``benchmarks/bench_*.py`` in its own process, prints and records the output.

    make bench          # or: python -m benchmarks.run
    python -m benchmarks.run --only=bench_cohort   # one benchmark; the others' results kept

Each benchmark prints its own table (ratios measured side by side in one run);
the collected output goes to ``benchmarks/results.json`` with the machine's name.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import subprocess
import sys
import time


def main() -> None:
  here = os.path.dirname(os.path.abspath(__file__))
  only = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--only=")]
  out = os.path.join(here, "results.json")
  previous = {}
  if only and os.path.exists(out):
    with open(out) as f:
      previous = json.load(f).get("benchmarks", {})
  results = {"machine": platform.platform(), "cpus": os.cpu_count(),
             "date": time.strftime("%Y-%m-%d"), "benchmarks": previous}
  for path in sorted(glob.glob(os.path.join(here, "bench_*.py"))):
    name = os.path.splitext(os.path.basename(path))[0]
    if only and name not in only:
      continue
    print(f"== {name}", flush=True)
    t0 = time.time()
    proc = subprocess.run([sys.executable, path], capture_output=True, text=True,
                          cwd=os.path.dirname(here))
    print(proc.stdout, end="", flush=True)
    if proc.returncode:
      print(proc.stderr[-2000:], file=sys.stderr)
      raise SystemExit(f"benchmark {name} failed with exit code {proc.returncode}")
    results["benchmarks"][name] = {"output": proc.stdout.splitlines(),
                                   "seconds": round(time.time() - t0, 1),
                                   "date": time.strftime("%Y-%m-%d %H:%M"),
                                   "load_average": list(os.getloadavg())}
  with open(os.path.join(here, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(f"wrote {os.path.join(here, 'results.json')}")


if __name__ == "__main__":
  main()
