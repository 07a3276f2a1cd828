"""The runs and the table of ``experiments.instruction_table`` (no flags: importable by
tests and other scripts): each method's config at an equal budget of training rows, the
rows one run gives, and the markdown table of mean ± std over seeds."""

from __future__ import annotations

import numpy as np

from configs.instruction import get_config

METHODS = ("fedbbpt", "fed_bo", "centralized_bo")
# The local-only baseline each method's run computes beside it: every client alone with
# zero-order steps (beside fedbbpt), or with its own BO on its own examples (beside fed_bo).
LOCAL_ONLY = {"fedbbpt": "local_only", "fed_bo": "local_bo"}
CLIENTS, PER_CLIENT, BATCH, BO_BATCH = 3, 5, 5, 5


def config_for(task: str, seed: int, method: str, budget: int, demos: int):
  """The run of one table cell (see ``experiments.instruction_table``'s docstring)."""
  c = get_config()
  c.task.name, c.seed, c.data.task_seed = task, seed, seed
  c.generator.projection_seed = seed
  c.task.demos = demos
  c.data.num_clients, c.data.train_examples = CLIENTS, CLIENTS * PER_CLIENT
  c.data.test_examples = 20
  c.client.batch_size = BATCH
  c.server.algorithm = method
  if method in ("fed_bo", "centralized_bo"):
    points = budget // (CLIENTS * PER_CLIENT)
    c.train.rounds = points // BO_BATCH
    c.bo.batch = BO_BATCH
    c.bo.initial = max(1, round(points / 3 / BO_BATCH)) * BO_BATCH
    c.baselines.local_only = method == "fed_bo"  # local_bo: every client's own BO
  else:
    c.train.rounds = budget // (CLIENTS * 2 * BATCH)  # SPSA: 2 candidates a step
    c.baselines.local_only = True
  c.train.eval_every = c.train.rounds
  c.train.eval_batch_size = 20
  return c


def fmt(values) -> str:
  v = 100 * np.asarray(values, float)
  return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"


def table(rows: list[dict]) -> str:
  lines = ["| task | method | zero-shot (z = 0) | found | training rows | LLM requests | "
           "generations | seeds |", "|---|---|---|---|---|---|---|---|"]
  for task in dict.fromkeys(r["task"] for r in rows):
    for method in (*METHODS, *LOCAL_ONLY.values()):
      rs = [r for r in rows if r["task"] == task and r["method"] == method]
      if not rs:
        continue
      run = rs[0].get("run", "fedbbpt")  # a baseline's row: the run that computed it
      mean = lambda key: (f"(in {run}'s)" if rs[0][key] is None
                          else f"{np.mean([r[key] for r in rs]):.0f}")
      lines.append(f"| {task} | {method} | {fmt([r['zero_shot'] for r in rs])} | "
                   f"{fmt([r['found'] for r in rs])} | {mean('training_rows')} | "
                   f"{mean('llm_requests')} | {mean('generations')} | {len(rs)} |")
  return "\n".join(lines) + "\n"


LABELS = {"zero_shot": "zero-shot\n(z = 0)", "fedbbpt": "federated\nzero-order",
          "fed_bo": "federated\nBO", "centralized_bo": "centralized\nBO",
          "local_only": "local-only\nzero-order", "local_bo": "local-only\nBO"}


def plot(rows: list[dict], path: str) -> str:
  """Writes the table as a bar chart: per task, test execution accuracy of zero-shot and
  every method, mean ± std over seeds, each seed a dot; returns ``path``."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  tasks = list(dict.fromkeys(r["task"] for r in rows))
  fig, axes = plt.subplots(1, len(tasks), figsize=(9 * len(tasks), 4.5), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    mine = [r for r in rows if r["task"] == task]
    zero = {r["seed"]: r["zero_shot"] for r in mine}  # the same z = 0 for every method
    bars = [("zero_shot", [zero[s] for s in sorted(zero)])]
    bars += [(m, [r["found"] for r in mine if r["method"] == m])
             for m in (*METHODS, *LOCAL_ONLY.values())]
    bars = [(m, 100 * np.asarray(v, float)) for m, v in bars if len(v)]
    x = np.arange(len(bars))
    ax.bar(x, [v.mean() for _, v in bars], yerr=[v.std(ddof=1) if len(v) > 1 else 0
                                                 for _, v in bars],
           capsize=4, color=["gray"] + ["tab:blue"] * (len(bars) - 1), alpha=0.7)
    for i, (_, v) in enumerate(bars):
      ax.plot(np.full(len(v), i), v, "k.", ms=6)
    ax.set_xticks(x, [f"{LABELS.get(m, m)}\n(n={len(v)})" for m, v in bars], fontsize=8)
    ax.set_ylabel("test execution accuracy (%)")
    ax.set_title(f"{task}: mean ± std over seeds (dots: seeds)")
    ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def rows_of(task: str, seed: int, method: str, summary: dict, seconds: float) -> list[dict]:
  """The table rows of one run (``fedbbpt`` also gives the zero-order local-only
  baseline's, ``fed_bo`` the local BO baseline's)."""
  out = [{"task": task, "seed": seed, "method": method, "zero_shot": summary["zero_shot_accuracy"],
          "found": summary["final_accuracy"], "training_rows": summary["black_box_queries"],
          "llm_requests": summary["llm_requests"], "generations": summary["generations"],
          "instruction": summary["instruction"], "seconds": round(seconds, 1)}]
  if summary.get("local_only_accuracy") is not None:
    out.append({**out[0], "method": LOCAL_ONLY[method], "run": method,
                "found": summary["local_only_accuracy"],
                "training_rows": summary["local_only_black_box_queries"],
                "llm_requests": None, "generations": None, "instruction": None})
  return out
