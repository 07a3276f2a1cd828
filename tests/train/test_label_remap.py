"""Iterative label mapping (ILM-VP), federated: what it derives, what it costs, resume.

``task.remap_every = R``: before every R-th round the clients count the prompted
black box's predictions on their mapping images, the server sums the counts and
re-derives the frequency mapping. Smoke config (digits, 3 clients, 32 px).
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import fmnist_effnet
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.tasks.image.remap import choose_mapping, correct_predictions, refresh_file
from fedbbpt_jax.tasks.image.label_mapping import frequency_mapping, prediction_counts
from fedbbpt_jax.train import run, validate_config
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.vmapped_sweep import SweepMismatchError, run_vmapped
from tests.helpers.overrides import with_overrides

ROUNDS = 3


def _config(remap_every=1, rounds=ROUNDS):
  return with_overrides(fmnist_effnet.get_config("smoke"), train__rounds=rounds,
                        train__eval_every=1, task__remap_every=remap_every,
                        baselines__zero_shot=False, baselines__local_only=False)


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def remapped_run(tmp_path_factory):
  """3 rounds with the mapping re-derived before rounds 2 and 3, black box counted."""
  workdir = str(tmp_path_factory.mktemp("ilm") / "run")
  wrapped = []
  summary = run(_config(), workdir, log=lambda s: None,
                wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  return workdir, summary, wrapped[0].counts()


def test_the_mapping_is_rederived_from_the_prompted_predictions(remapped_run):
  workdir, _, _ = remapped_run
  config = _config()
  exp = build_experiment(config, workdir=workdir)
  state, _ = RoundCheckpointer(workdir).restore(1, exp.algorithm.init(exp.init_params))
  params = exp.algorithm.model(state)  # the global prompt after round 1
  m = config.task.mapping_examples_per_client
  counts = sum(prediction_counts(np.asarray(exp.task.source_logits(params, exp.clients.x[i, :m])),
                                 np.asarray(exp.clients.y[i, :m]), exp.task.num_classes)
               for i in range(exp.num_clients))
  candidate = frequency_mapping(counts, config.task.sources_per_label)
  with np.load(os.path.join(workdir, "label_map.npz")) as f:
    first = f["label_map"]
  assert not np.array_equal(first, candidate)  # the prompt changed the counts
  # Kept only if it classifies the mapping images at least as well as the mapping in force.
  outputs = [(np.asarray(exp.task.source_logits(params, exp.clients.x[i, :m])),
              np.asarray(exp.clients.y[i, :m])) for i in range(exp.num_clients)]
  better = correct_predictions(outputs, candidate) >= correct_predictions(outputs, first)
  with np.load(os.path.join(workdir, refresh_file(1))) as f:
    np.testing.assert_array_equal(f["label_map"], candidate if better else first)
    assert int(f["mapping_queries"]) == exp.num_clients * m


def test_a_candidate_mapping_is_kept_only_if_it_is_not_worse():
  # Two images of labels 0 and 1; sources 0..3. The current mapping (0 -> label 0,
  # 1 -> label 1) gets both right; the candidate (2 -> 0, 3 -> 1) gets one right.
  logits = np.asarray([[5.0, 0.0, 0.0, 4.0], [0.0, 5.0, 1.0, 0.0]])
  outputs = [(logits, np.asarray([0, 1]))]
  current = np.asarray([[1, 0], [0, 1], [0, 0], [0, 0]], np.float32)
  candidate = np.asarray([[0, 0], [0, 0], [1, 0], [0, 1]], np.float32)
  assert correct_predictions(outputs, current) == 2
  assert correct_predictions(outputs, candidate) == 0
  np.testing.assert_array_equal(choose_mapping(outputs, current, candidate, "better"), current)
  np.testing.assert_array_equal(choose_mapping(outputs, current, candidate, "always"), candidate)
  np.testing.assert_array_equal(choose_mapping(outputs, candidate, current, "better"), current)
  with pytest.raises(ValueError, match="remap_accept"):
    choose_mapping(outputs, current, candidate, "sometimes")


def test_remapping_is_metered_and_the_meter_equals_the_real_traffic(remapped_run):
  workdir, summary, real = remapped_run
  config = _config()
  rows = _rows(workdir)
  per_refresh = 3 * config.task.mapping_examples_per_client  # 3 clients, one call each
  assert [r.get("refresh_bb_examples") for r in rows] == [None, per_refresh, per_refresh]
  assert summary["task_refreshes"] == 2 and summary["refresh_bb_examples"] == 2 * per_refresh
  frozen = run(_config(remap_every=0), os.path.join(os.path.dirname(workdir), "frozen"),
               log=lambda s: None)
  counters, frozen_counters = summary["query_counters"], frozen["query_counters"]
  assert counters["bb_examples"] - frozen_counters["bb_examples"] == 2 * per_refresh
  assert counters["bb_calls"] - frozen_counters["bb_calls"] == 2 * 3
  assert real["examples"] == counters["bb_examples"] + counters["eval_bb_examples"]
  # Real forwards: the first mapping and each re-mapping one per client, one per client
  # and local step (all candidates in one call), two per evaluation (200 test images).
  steps = config.client.local_steps
  assert real["calls"] == 3 + 2 * 3 + ROUNDS * 3 * steps + ROUNDS * 2
  assert summary["final_accuracy"] != frozen["final_accuracy"]


@pytest.mark.parametrize("crash", ["before_round_3", "mapping_file_lost"])
def test_resume_after_a_crash_is_bit_exact(remapped_run, tmp_path, crash):
  whole, _, _ = remapped_run
  resumed = str(tmp_path / "resumed")
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "3"))  # resumes after round 2: reads
  # round 2's mapping back (no query) and finds round 3's in the workdir (metered again)
  if crash == "mapping_file_lost":  # crashed before round 3's mapping was written
    os.remove(os.path.join(resumed, refresh_file(2)))
  os.remove(os.path.join(resumed, "summary.json"))
  run(_config(), resumed, log=lambda s: None)
  for a, b in zip(_rows(whole), _rows(resumed), strict=True):
    for key in ("train_loss", "test_accuracy", "test_loss", "bb_examples", "bb_calls"):
      assert a[key] == b[key], (crash, key, a, b)
  for x, y in zip(jax.tree.leaves(RoundCheckpointer(whole).restore(3)[0]),
                  jax.tree.leaves(RoundCheckpointer(resumed).restore(3)[0]), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_lost_earlier_mapping_stops_the_resume_with_its_file_named(remapped_run, tmp_path):
  whole, _, _ = remapped_run
  resumed = str(tmp_path / "resumed")
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "3"))
  os.remove(os.path.join(resumed, refresh_file(1)))  # round 2's mapping: needed to go on
  with pytest.raises(FileNotFoundError, match=refresh_file(1)):
    run(_config(), resumed, log=lambda s: None)


def test_remapping_is_checked_and_not_vmapped(tmp_path):
  with pytest.raises(ConfigError, match="config.task.remap_every"):
    validate_config(with_overrides(_config(), task__remap_every=-1))
  with pytest.raises(ConfigError, match="config.task.remap_accept"):
    validate_config(with_overrides(_config(), task__remap_accept="never"))
  with pytest.raises(ConfigError, match="label_mapping='fixed'"):
    validate_config(with_overrides(_config(), task__label_mapping="fixed"))
  configs = [with_overrides(_config(rounds=2), seed=s) for s in (0, 1)]
  with pytest.raises(SweepMismatchError, match="one by one"):
    run_vmapped(configs, [str(tmp_path / "a"), str(tmp_path / "b")], log=lambda s: None)
