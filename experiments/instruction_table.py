"""The instruction track's score table: federated vs centralized BO vs local-only at equal
black-box queries, on rule tasks, over seeds, with SmolLM2-135M-Instruct offline as both
the generator and the black-box LLM.

    python -m experiments.instruction_table --workdir=/tmp/instruction_table \\
        [--tasks=first_word_letter,singular_to_plural,letters_list] [--seeds=0,1,2] [--demos=3] \\
        [--methods=federated,bo,local_only] [--sigma=0.2]

Every run is ``run_instruction`` on ``configs/instruction.py:table`` (one process, so the
model is loaded and compiled once). Equal queries: the federated search's training
queries (``rounds x clients x (2 candidates + 1 check) x examples_per_client`` at most)
set the others' budgets: local-only runs ``num_clients`` times more rounds on one client,
BO evaluates ``federated queries / pooled examples`` points. Writes ``results.json`` and
``table.md`` (mean ± std over seeds of the test score before and after) in the workdir.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags

from configs.instruction import get_config
from fedbbpt_jax.tasks.instruction.experiment import run_instruction

_WORKDIR = flags.DEFINE_string("workdir", None, "where results.json and table.md go")
_TASKS = flags.DEFINE_list("tasks", ["first_word_letter", "singular_to_plural", "letters_list"],
                           "rule tasks")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "seeds (task examples, projection, search)")
_DEMOS = flags.DEFINE_integer("demos", 0, "few-shot demonstrations in every execution query "
                              "(task.demos; InstructZero's execution uses 5)")
_METHODS = ("federated", "bo", "local_only")
_ONLY = flags.DEFINE_list("methods", list(_METHODS), "methods to run")
_SIGMA = flags.DEFINE_float("sigma", None, "zo.sigma of the zero-order searches (default: the "
                            "config's)")
flags.mark_flag_as_required("workdir")


def config_for(task: str, seed: int, method: str):
  c = get_config("table")
  c.task.name, c.seed, c.method = task, seed, method
  c.generator.projection_seed = seed
  c.task.demos = _DEMOS.value
  if _SIGMA.value is not None:
    c.zo.sigma = _SIGMA.value
  if method == "local_only":  # one client, as many queries as the whole federation
    c.train.rounds *= c.task.num_clients
  return c


def fmt(xs) -> str:
  return f"{100 * np.mean(xs):.1f} ± {100 * np.std(xs):.1f}"


def table(rows: list[dict]) -> str:
  lines = ["| task | method | zero-shot (z = 0) | found | train queries | generations |",
           "|---|---|---|---|---|---|"]
  for task in dict.fromkeys(r["task"] for r in rows):
    for method in _METHODS:
      rs = [r for r in rows if r["task"] == task and r["method"] == method]
      if rs:
        lines.append(f"| {task} | {method} | {fmt([r['zero_shot_test_score'] for r in rs])} | "
                     f"{fmt([r['test_score'] for r in rs])} | "
                     f"{np.mean([r['train_queries'] for r in rs]):.0f} | "
                     f"{np.mean([r['generations'] for r in rs]):.0f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  os.makedirs(_WORKDIR.value, exist_ok=True)
  out = os.path.join(_WORKDIR.value, "results.json")
  rows = json.load(open(out)) if os.path.exists(out) else []
  done = {(r["task"], r["seed"], r["method"]) for r in rows}
  for task in _TASKS.value:
    for seed in map(int, _SEEDS.value):
      for method in _ONLY.value:
        if (task, seed, method) in done:
          continue
        start = time.time()
        s = run_instruction(config_for(task, seed, method),
                            os.path.join(_WORKDIR.value, f"{task}_{seed}_{method}"))
        s.update(seed=seed, seconds=round(time.time() - start, 1))
        rows.append(s)
        with open(out, "w") as f:
          json.dump(rows, f, indent=1)
        print(f"{task} seed {seed} {method}: {100 * s['zero_shot_test_score']:.1f} -> "
              f"{100 * s['test_score']:.1f} ({s['train_queries']} queries, {s['seconds']} s) "
              f"{s['instruction']!r}", flush=True)
  with open(os.path.join(_WORKDIR.value, "table.md"), "w") as f:
    f.write(table(rows))
  print(table(rows))


if __name__ == "__main__":
  app.run(main)
