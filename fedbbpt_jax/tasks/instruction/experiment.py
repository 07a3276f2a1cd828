"""One instruction-optimisation run from its config (``configs/instruction.py``): the task
split into exemplars, client parts and a test set; the generator and the black-box LLM
(both SmolLM2-135M-Instruct offline by default, one copy when they are the same model);
the chosen search; the found instruction scored on the test set against the zero-shot
instruction (the one found at ``z = 0``). ``experiments.instruct`` is its command line.

The federated and local-only searches keep ``workdir/search_state.json`` after every
round: running again with the same workdir resumes after the last complete round. Each
round appends a row to ``workdir/metrics.jsonl`` (round, training score of the global
point, its instruction, generations and queries so far); a resumed run drops rows past
the saved round before continuing.
"""

from __future__ import annotations

import json
import os

from typing import Callable

import numpy as np

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.tasks.instruction.config_check import check_instruction_config
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer
from fedbbpt_jax.tasks.instruction.generator import InstructionGenerator
from fedbbpt_jax.tasks.instruction.llms import chat_llm, load_model, load_task
from fedbbpt_jax.tasks.instruction.search import (centralized_bo, federated_search,
                                                  local_only_search)
from fedbbpt_jax.zo import HParams, make_estimator



STATE_FILE = "search_state.json"
METRICS_FILE = "metrics.jsonl"


def metrics_writer(workdir: str):
  """``on_round`` hook appending rows to ``workdir/metrics.jsonl``, after dropping rows of
  rounds the saved state does not hold (a crash between the row and the state)."""
  path, state = os.path.join(workdir, METRICS_FILE), os.path.join(workdir, STATE_FILE)
  done = json.load(open(state))["rounds_done"] if os.path.exists(state) else 0
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      rows = [line for line in f if line.strip() and json.loads(line)["round"] <= done]
  with open(path, "w") as f:
    f.writelines(rows)

  def write(row: dict) -> None:
    with open(path, "a") as f:
      f.write(json.dumps(row) + "\n")
  return write


def run_instruction(config, workdir: str, aggregator: Callable | None = None) -> dict:
  """Runs ``config.method`` and returns (and writes) the summary.

  Args:
    aggregator: the server's rule for the federated search (``experiments.instruct``
      resolves ``config.server.aggregator`` with ``federated.make_aggregator``); None
      is the example-weighted mean.
  """
  check_instruction_config(config)
  if aggregator is None and config.server.aggregator != "weighted_mean":
    raise ConfigError(f"config.server.aggregator={config.server.aggregator!r} needs the "
                      "aggregate function: run it through experiments.instruct")
  if not config.generator.model_path:
    raise ConfigError("config.generator.model_path is empty: name a model "
                      "('smollm2-135m-instruct' ships offline), a .gguf file or a model folder")
  g = config.generator
  lm = load_model(g.model_path, "generator.model_path")
  llm = chat_llm(config, "blackbox", lm)
  t = config.task
  need = t.exemplars + t.num_clients * t.examples_per_client + t.test_examples
  task = load_task(config, need, config.seed,
                   "exemplars + clients x examples_per_client + test_examples")
  ex = task.examples
  exemplars = ex[:t.exemplars]
  parts = [ex[t.exemplars + i * t.examples_per_client:t.exemplars + (i + 1) *
              t.examples_per_client] for i in range(t.num_clients)]
  test = ex[t.exemplars + t.num_clients * t.examples_per_client:need]
  generator = InstructionGenerator(lm, exemplars, intrinsic_dim=g.intrinsic_dim,
                                   num_soft_tokens=g.num_soft_tokens,
                                   max_new_tokens=g.max_new_tokens,
                                   projection_seed=g.projection_seed)
  scorer = lambda examples: InstructionScorer(llm, examples, t.scorer, exemplars=exemplars,
                                              demos=exemplars[:t.demos],
                                              max_tokens=config.blackbox.max_tokens)
  estimator = make_estimator(config.zo.estimator, config.zo.num_directions)
  hp = HParams.create(lr=config.zo.lr, sigma=config.zo.sigma)
  z0 = np.zeros(g.intrinsic_dim, np.float32)
  os.makedirs(workdir, exist_ok=True)
  state_file = os.path.join(workdir, STATE_FILE)
  if config.method == "federated":
    result = federated_search(generator, [scorer(p) for p in parts], estimator, hp,
                              config.train.rounds, config.train.local_steps, z0, config.seed,
                              aggregator=aggregator, state_file=state_file,
                              on_round=metrics_writer(workdir))
  elif config.method == "local_only":
    result = local_only_search(generator, scorer(parts[0]), estimator, hp, config.train.rounds,
                               config.train.local_steps, z0, config.seed, state_file=state_file,
                               on_round=metrics_writer(workdir))
  else:
    pooled = tuple(e for p in parts for e in p)
    result = centralized_bo(generator, scorer(pooled), g.intrinsic_dim, config.bo.initial,
                            config.bo.iterations, config.bo.batch, config.seed)
  test_scorer = scorer(test)
  zero_shot = generator.generate(z0[None])[0]
  found, baseline = test_scorer.score([result.instruction, zero_shot])
  summary = {"method": config.method, "task": task.name, "true_definition": task.definition,
             "instruction": result.instruction, "test_score": found.mean,
             "zero_shot_instruction": zero_shot, "zero_shot_test_score": baseline.mean,
             "train_history": result.history, "generations": result.generations,
             "train_queries": result.queries, "test_queries": test_scorer.queries,
             "stopped": result.stopped, "selected_round": result.selected_round,
             "z": result.z.tolist()}
  if hasattr(llm, "meter"):
    summary["black_box_tokens"] = llm.meter.total_tokens
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return summary
