"""Runs a text config over several seeds and prints zero-shot vs learned prompt.

    python -m experiments.text_seeds --config=configs/drug_minilm.py --workdir=/tmp/seeds \
        [--seeds=0,1,2] [--config.server.algorithm=fedone ...]

Each seed runs in ``WORKDIR/seed_<s>`` (resumable like ``experiments.train``). The
table gives accuracy and macro-F1 as mean +- standard deviation (and min..max)
over seeds, per-class recall means, the learned prompts, queries and wall time.
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from experiments import config_cli

from fedbbpt_jax.train import run, validate_config

_CONFIG = config_flags.DEFINE_config_file("config", None, "text config file[:mode]",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "parent directory of the per-seed runs")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "seeds to run")
flags.mark_flags_as_required(["config", "workdir"])


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
  """``mean +- std (min..max)`` of ``values`` times ``scale``."""
  v = np.asarray(values, np.float64) * scale
  f = f"{{:.{digits}f}}"
  return (f"{f.format(v.mean())} +- {f.format(v.std(ddof=1) if len(v) > 1 else 0.0)} "
          f"({f.format(v.min())}..{f.format(v.max())})")


def format_table(summaries: list[dict], seeds: list[int]) -> str:
  """The seed table: zero-shot vs learned, per-class recall, prompts, queries."""
  s0 = summaries[0]
  names = s0.get("class_names") or [str(i) for i in range(len(s0["final_per_class_recall"]))]
  lines = [f"{len(seeds)} seeds {seeds}; test examples {s0['test_examples']}",
           f"{'':26s}{'accuracy %':>28s}{'macro-F1':>30s}",
           f"{'zero-shot':26s}{100 * s0['zero_shot_accuracy']:28.1f}"
           f"{s0['zero_shot_macro_f1']:30.3f}",
           f"{'learned prompt (final)':26s}"
           f"{spread([s['final_accuracy'] for s in summaries], 100):>28s}"
           f"{spread([s['final_macro_f1'] for s in summaries], 1, 3):>30s}",
           "", f"{'per-class recall':26s}{'zero-shot':>12s}{'learned (mean)':>16s}"]
  for c, name in enumerate(names):
    zs = s0["zero_shot_per_class_recall"][c]
    learned = [s["final_per_class_recall"][c] for s in summaries]
    if zs is None or any(r is None for r in learned):
      continue
    lines.append(f"  {name:24s}{zs:12.2f}{np.mean(learned):16.2f}")
  lines.append("")
  for seed, s in zip(seeds, summaries):
    flag = "  COLLAPSED" if s.get("collapsed_to_majority") else ""
    lines.append(f"seed {seed}: acc {100 * s['final_accuracy']:.1f}%  macro-F1 "
                 f"{s['final_macro_f1']:.3f}  prompt '{s.get('learned_prompt', '')}'  "
                 f"queries {s['black_box_queries']:,} (calls {s['query_counters']['bb_calls']:,})"
                 f"  {s['wall_seconds']:.0f}s{flag}")
  return "\n".join(lines)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(s) for s in _SEEDS.value]
  configs = []
  for seed in seeds:  # every seed's config is validated before the first run starts
    config = _CONFIG.value.copy_and_resolve_references()
    config.seed = seed
    validate_config(config)
    configs.append(config)
  summaries = []
  for seed, config in zip(seeds, configs):
    workdir = os.path.join(_WORKDIR.value, f"seed_{seed}")
    print(f"--- seed {seed} -> {workdir}", flush=True)
    summaries.append(run(config, workdir, log=lambda s: print(s, flush=True)))
  print(format_table(summaries, seeds), flush=True)


if __name__ == "__main__":
  config_cli.run(main)
