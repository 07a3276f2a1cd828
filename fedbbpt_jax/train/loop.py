"""The experiment driver: baselines, the round loop, checkpoints, resume, summary, plots."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from fedbbpt_jax.blackbox import QueryMeter
from fedbbpt_jax.parallel import replicate
from fedbbpt_jax.parallel.devices import ensure_cpu_devices
from fedbbpt_jax.prompts import num_params
from fedbbpt_jax.train import records
from fedbbpt_jax.train.build import TEST_SUBSET_SEED, Experiment, build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.config_check import validate_config
from fedbbpt_jax.train.evaluation import Evaluator
from fedbbpt_jax.train.plots import plot_accuracy
from fedbbpt_jax.train.summary_table import ALGORITHM_NAMES


def raise_blackbox_error(exp: Experiment) -> None:
  """Raises the error a remote black box recorded in its host callback, if any.

  A ``jax.pure_callback`` must not raise, so ``RemoteBlackBox`` returns NaN and keeps
  the error; this is called after every step and evaluation, before anything is
  written, so a failed round is never committed (the last checkpoint stays intact).
  """
  check = getattr(getattr(exp.task, "blackbox", None), "raise_pending_error", None)
  if check is not None:
    check()


def round_counters(exp: Experiment) -> dict[str, int]:
  """Query-meter increments of one training round of ``exp.algorithm``.

  Experiments that know their algorithm's exact cost carry a ``round_cost``
  (``train.algorithms.RoundCost``); otherwise every cohort member runs the local
  update: ``local_steps x num_candidates`` calls of one minibatch each.
  """
  cost = getattr(exp, "round_cost", None)
  if cost is not None:
    return cost.counters()
  calls = exp.cohort_size * exp.config.client.local_steps * exp.num_candidates
  return {"bb_examples": exp.train_examples_per_round(), "bb_calls": calls,
          "candidates": calls, "client_activations": exp.cohort_size}


def _rounds_runner(algorithm, backend: str) -> Callable:
  return algorithm.apply if backend == "loop" else jax.jit(algorithm.apply)


def _placed(tree: Any, backend: str) -> Any:
  """The ``shard`` backend keeps state and client data replicated over its mesh."""
  return replicate(tree) if backend == "shard" else tree


def run_local_only(exp: Experiment, evaluator: Evaluator) -> dict[str, Any]:
  """Trains every client alone for the same rounds and steps; evaluates each generator."""
  step = _rounds_runner(exp.local_only, exp.config.parallel.backend)
  backend = exp.config.parallel.backend
  state, clients = _placed((exp.local_only.init(exp.init_params), exp.clients), backend)
  for _ in range(exp.config.train.rounds):
    state, _ = step(state, clients, exp.root_key, exp.hparams)
  accs = []
  for i in range(exp.num_clients):
    acc, _ = evaluator(jax.tree.map(lambda a: a[i], state.params))
    raise_blackbox_error(exp)
    accs.append(acc)
  queries = exp.config.train.rounds * exp.train_examples_per_round(exp.num_clients)
  return {"local_only_accuracy": float(np.mean(accs)),
          "local_only_worst_accuracy": float(np.min(accs)),
          "local_only_client_accuracies": [float(a) for a in accs],
          "local_only_black_box_queries": int(queries)}


def _baselines(exp: Experiment, evaluator: Evaluator, workdir: str, which: tuple[str, ...],
               log: Callable[[str], None]) -> dict[str, Any]:
  """Computes (or reads back) the requested baselines, cached in ``baselines.json``."""
  path = os.path.join(workdir, "baselines.json")
  cached = records.read_json(path) if os.path.exists(path) else {}
  if "zero_shot" in which and "zero_shot_accuracy" not in cached:
    rep = evaluator.report(None)
    raise_blackbox_error(exp)
    cached.update(zero_shot_accuracy=rep["accuracy"], zero_shot_loss=rep["loss"],
                  zero_shot_macro_f1=rep["macro_f1"],
                  zero_shot_per_class_recall=rep["per_class_recall"],
                  zero_shot_collapsed_to_majority=rep["collapsed_to_majority"])
    records.write_json(path, cached)
  if "local_only" in which and "local_only_accuracy" not in cached:
    log("local-only baseline: every client trains alone for the same rounds ...")
    t0 = time.time()
    cached.update(run_local_only(exp, evaluator))
    cached["local_only_seconds"] = time.time() - t0
    records.write_json(path, cached)
  return cached


def run(config: ml_collections.ConfigDict, workdir: str,
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs (or resumes) an experiment in ``workdir`` and returns its summary.

  Rerunning with the same config and workdir continues after the last complete
  round; a finished run only rewrites its summary and plots.
  """
  t_start = time.time()
  validate_config(config)
  ensure_cpu_devices(config.parallel.get("cpu_devices", 0))
  os.makedirs(workdir, exist_ok=True)
  records.check_or_write_config(workdir, config)
  exp = build_experiment(config)
  raise_blackbox_error(exp)  # the label mapping's queries
  evaluator = Evaluator(exp.task, exp.test_x, exp.test_y, config.train.eval_batch_size)
  log(f"clients {exp.num_clients} (examples {np.asarray(exp.clients.num_examples).tolist()}), "
      f"prompt '{config.prompt.kind}' with {num_params(exp.init_params)} parameters, "
      f"estimator {config.zo.estimator} ({exp.num_candidates} candidates/step), "
      f"test subset {evaluator.num_examples} examples")

  # Zero-shot first (unless switched off: against a paid API it costs queries).
  baselines = _baselines(exp, evaluator, workdir,
                         ("zero_shot",) if config.baselines.zero_shot else (), log)
  if "zero_shot_accuracy" in baselines:
    log(f"zero-shot accuracy {100 * baselines['zero_shot_accuracy']:.2f}%")

  meter = QueryMeter(budget_examples=config.blackbox.budget_examples)
  ckpt = RoundCheckpointer(workdir)
  metrics_log = records.MetricsLog(workdir)
  state = exp.algorithm.init(exp.init_params)
  prior_seconds = 0.0
  start_round = ckpt.latest_round() or 0
  if start_round:
    state, meta = ckpt.restore(start_round, state)
    meter.load_state_dict(meta["queries"])
    prior_seconds = meta["wall_seconds"]
    log(f"resuming after round {start_round}")
  else:
    meter.add(bb_examples=exp.mapping_queries,
              bb_calls=getattr(exp, "mapping_calls", exp.num_clients))
  metrics_log.truncate(start_round)
  state, clients = _placed((state, exp.clients), config.parallel.backend)

  step = _rounds_runner(exp.algorithm, config.parallel.backend)
  per_round = exp.train_examples_per_round()
  for r in range(start_round, config.train.rounds):
    meter.check_budget(per_round)
    t0 = time.time()
    state, m = step(state, clients, exp.root_key, exp.hparams)
    train_loss = float(m["train_loss"])
    raise_blackbox_error(exp)
    if not np.isfinite(train_loss):
      raise FloatingPointError(f"round {r + 1}: training loss is {train_loss}; "
                               "lower config.client.lr or config.zo.sigma")
    meter.add(**round_counters(exp))
    round_seconds = time.time() - t0
    row = {"round": r + 1, "train_loss": train_loss, "cohort": np.asarray(m["cohort"]).tolist(),
           "round_seconds": round_seconds}
    if (r + 1) % config.train.eval_every == 0 or r + 1 == config.train.rounds:
      rep = evaluator.report(state.params)
      raise_blackbox_error(exp)
      meter.add(eval_bb_examples=evaluator.num_examples)
      row.update(test_accuracy=rep["accuracy"], test_loss=rep["loss"],
                 test_macro_f1=rep["macro_f1"], test_per_class_recall=rep["per_class_recall"],
                 collapsed_to_majority=rep["collapsed_to_majority"])
      if rep["collapsed_to_majority"]:
        log(f"warning: round {r + 1}: one class takes {100 * rep['max_prediction_share']:.0f}% "
            "of the test predictions (majority collapse): judge by macro-F1, not accuracy")
    wall = prior_seconds + time.time() - t_start
    row.update(wall_seconds=wall, **meter.state_dict())
    metrics_log.append(row)
    ckpt.save(r + 1, state, {"queries": meter.state_dict(), "wall_seconds": wall})
    acc_text = f"acc {100 * row['test_accuracy']:.2f}%  " if "test_accuracy" in row else ""
    log(f"round {r + 1}/{config.train.rounds}  {acc_text}train loss {train_loss:.4f}  "
        f"queries {meter.counts['bb_examples']:,}  {round_seconds:.1f}s")
  ckpt.close()

  which = tuple(name for name in ("zero_shot", "local_only") if config.baselines[name])
  baselines = _baselines(exp, evaluator, workdir, which, log)
  rows = metrics_log.rows()
  final = [r for r in rows if "test_accuracy" in r][-1]
  summary = {
      "final_accuracy": final["test_accuracy"],
      "final_loss": final["test_loss"],
      "final_macro_f1": final.get("test_macro_f1"),
      "final_per_class_recall": final.get("test_per_class_recall"),
      "collapsed_to_majority": final.get("collapsed_to_majority"),
      "best_accuracy": max(r["test_accuracy"] for r in rows if "test_accuracy" in r),
      "algorithm": exp.algorithm.name,
      "rounds": config.train.rounds,
      "num_clients": exp.num_clients,
      "cohort_size": exp.cohort_size,
      "black_box_queries": meter.counts["bb_examples"],
      "query_counters": meter.state_dict(),
      "prompt_parameters": num_params(exp.init_params),
      "test_examples": evaluator.num_examples,
      "test_split": f"{config.data.name} test, fixed subset of {evaluator.num_examples} "
                    f"(permutation seed {TEST_SUBSET_SEED})",
      "wall_seconds": prior_seconds + time.time() - t_start,
      "label_histograms": np.asarray(exp.label_histograms).tolist(),
  }
  summary.update(baselines)
  if hasattr(exp, "describe_params"):  # e.g. the learned prompt as text
    summary.update(exp.describe_params(state.params))
  summary.setdefault("zero_shot_accuracy", None)
  summary.setdefault("local_only_accuracy", None)
  records.write_json(os.path.join(workdir, "summary.json"), summary)
  method = ALGORITHM_NAMES.get(exp.algorithm.name, exp.algorithm.name)
  plot_accuracy(rows, os.path.join(workdir, "accuracy.png"),
                summary["zero_shot_accuracy"], summary["local_only_accuracy"],
                title=f"{method}, {config.data.name}, {exp.num_clients} clients", method=method)
  return summary

