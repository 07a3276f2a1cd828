"""The instruction track's comparison at equal black-box queries: federated zero-order
(``fedbbpt``), federated BO (``fed_bo``), centralized BO on the pooled examples
(``centralized_bo``) and every client alone (the local-only baselines: zero-order, and
each client's own BO), against the zero-shot instruction (``z = 0``), over seeds, through
``experiments.train``'s driver.

    python -m experiments.instruction_table --workdir=/tmp/instruction_table \\
        [--tasks=first_word_letter] [--seeds=0,1,2] [--demos=3] \\
        [--methods=fedbbpt,fed_bo,centralized_bo] [--budget=450]

Every run is ``train.run`` on ``configs/instruction.py`` (one process: the models are loaded
once) with 3 clients x 5 training examples and 20 test examples. Equal queries: ``--budget``
``(z, example)`` rows of training for every method. ``fedbbpt`` (one SPSA step of 2
candidates on a batch of 5 per client and round) runs ``budget / 30`` rounds; the BO methods
evaluate ``budget / 15`` points on all 15 training examples, a design of a third of them
(rounded to the batch) and the rest in batches of 5. The local-only baselines run beside
``fedbbpt`` (every client alone with zero-order steps, the same rounds: a third of the
queries each) and beside ``fed_bo`` (``local_bo``: every client's own BO on its 5
examples, the same points per round: a third of the rows each). Writes
``results.json``, ``table.md`` (test execution accuracy, mean ± std over seeds) and
``instruction_table.png`` (the same as bars, each seed a dot) in the workdir; runs already
in ``results.json`` are not repeated, and an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from experiments.instruction_runs import METHODS, config_for, plot, rows_of, table
from fedbbpt_jax.train import run

_WORKDIR = flags.DEFINE_string("workdir", None, "where results.json and table.md go")
_TASKS = flags.DEFINE_list("tasks", ["first_word_letter"], "rule tasks")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "seeds (task examples, projection, run)")
_DEMOS = flags.DEFINE_integer("demos", 3, "few-shot demonstrations in every execution query "
                              "(task.demos; InstructZero's execution uses 5)")
_ONLY = flags.DEFINE_list("methods", list(METHODS), "server.algorithm values to compare")
_BUDGET = flags.DEFINE_integer("budget", 450, "training (z, example) rows per method")
flags.mark_flag_as_required("workdir")


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
        summary = run(config_for(task, seed, method, _BUDGET.value, _DEMOS.value),
                      os.path.join(_WORKDIR.value, f"{task}_{seed}_{method}"))
        new = rows_of(task, seed, method, summary, time.time() - start)
        rows.extend(new)
        with open(out, "w") as f:
          json.dump(rows, f, indent=1)
        print(f"{task} seed {seed} {method}: {100 * new[0]['zero_shot']:.1f} -> "
              f"{100 * new[0]['found']:.1f}% ({new[0]['training_rows']} rows, "
              f"{new[0]['seconds']} s) {new[0]['instruction']!r}", flush=True)
  with open(os.path.join(_WORKDIR.value, "table.md"), "w") as f:
    f.write(table(rows))
  print(table(rows))
  print(plot(rows, os.path.join(_WORKDIR.value, "instruction_table.png")))


if __name__ == "__main__":
  app.run(main)
