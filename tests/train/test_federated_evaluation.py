"""Federated evaluation (``train.evaluation``): local test splits, summed sums, the records.

The smoke config on the tiny image model (``tests/helpers/tiny_models.py``), one round
each in 'central', 'both' and 'federated'. The clients' sums are checked against
confusion matrices built by hand from the model's predictions on each client's rows,
and the pooled metrics against scikit-learn's on the union of the splits.
"""

import json
import os

import ml_collections
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import local_test_parts, make_partition
from fedbbpt_jax.train import records, run, validate_config
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.client_tests import SimulatedClientTests
from tests.helpers.overrides import with_overrides
from fedbbpt_jax.federated.algorithms.algorithm import tree_bytes
from tests.helpers.tiny_models import tiny

# The rows and summary of a 'central' run, exactly as before train.evaluation existed.
CENTRAL_ROW_KEYS = {
    "bb_calls", "bb_examples", "candidates", "client_activations", "cohort",
    "collapsed_to_majority", "download_bytes", "eval_bb_examples", "generator_calls",
    "nonfinite_candidates", "round", "round_seconds", "test_accuracy", "test_loss",
    "test_macro_f1", "test_per_class_recall", "train_loss", "upload_bytes", "wall_seconds"}
CENTRAL_SUMMARY_KEYS = {
    "algorithm", "best_accuracy", "black_box_queries", "cohort_size", "collapsed_to_majority",
    "final_accuracy", "final_loss", "final_macro_f1", "final_per_class_recall",
    "label_histograms", "local_only_accuracy", "num_clients", "prompt_parameters",
    "query_counters", "rounds", "test_examples", "test_split", "wall_seconds",
    "zero_shot_accuracy"}
FED_ROW_KEYS = {
    "fed_test_accuracy", "fed_test_loss", "fed_test_macro_f1", "fed_test_per_class_recall",
    "fed_test_examples", "fed_test_clients", "fed_test_client_accuracy_min",
    "fed_test_client_accuracy_mean", "fed_test_client_accuracy_max",
    "fed_test_client_accuracy_std", "fed_test_upload_bytes", "fed_test_download_bytes"}
FED_TRAFFIC_KEYS = {"fed_test_upload_bytes", "fed_test_download_bytes"}  # rows only
TEST_EXAMPLES = 200  # the smoke config's test subset


def smoke(**overrides):
  return with_overrides(tiny(get_config("smoke")), train__rounds=1,
                        baselines__zero_shot=False, baselines__local_only=False, **overrides)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """``{mode: (config, workdir, summary, rows)}`` of one round in each mode."""
  out = {}
  for mode in ("central", "both", "federated"):
    workdir = str(tmp_path_factory.mktemp(mode))
    config = smoke(train__evaluation=mode)
    summary = run(config, workdir, log=lambda s: None)
    out[mode] = (config, workdir, summary, records.MetricsLog(workdir).rows())
  return out


def data_cfg(partition, partition_seed=0, num_clients=4):
  return ml_collections.ConfigDict({"partition": partition, "num_clients": num_clients,
                                    "partition_seed": partition_seed, "dirichlet_alpha": 0.5,
                                    "shards_per_client": 2, "test_examples": 0})


@pytest.mark.parametrize("partition", ["iid", "dirichlet", "shards"])
def test_local_test_splits_partition_the_test_set_deterministically(partition):
  labels = np.random.default_rng(7).integers(0, 10, size=300)
  parts = local_test_parts(labels, data_cfg(partition))
  assert len(parts) == 4
  rows = np.concatenate(parts)
  assert len(rows) == len(np.unique(rows)) == 300  # disjoint ...
  np.testing.assert_array_equal(np.sort(rows), np.arange(300))  # ... and their union is all
  assert all(np.array_equal(p, np.sort(p)) for p in parts)
  again = local_test_parts(labels, data_cfg(partition))
  assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
  other_seed = local_test_parts(labels, data_cfg(partition, partition_seed=1))
  assert not all(np.array_equal(a, b) for a, b in zip(parts, other_seed, strict=True))
  # Its own seed stream: not the draw the training partition makes with the same seed.
  training_draw = make_partition(partition, labels, 4, 0, alpha=0.5, shards_per_client=2)
  assert not all(np.array_equal(a, b) for a, b in zip(parts, training_draw, strict=True))


def test_a_test_set_smaller_than_the_clients_is_refused_naming_the_fields():
  with pytest.raises(ConfigError) as e:
    local_test_parts(np.zeros(3, np.int64), data_cfg("iid"))
  assert str(e.value) == (
      "federated evaluation (config.train.evaluation) splits the 3 test examples "
      "(config.data.test_examples=0) among config.data.num_clients=4 clients by "
      "config.data.partition='iid', which fails: num_clients must be in [1, 3] (the number "
      "of examples), got 4.")


def test_an_unknown_evaluation_is_refused_naming_the_field():
  with pytest.raises(ConfigError) as e:
    validate_config(smoke(train__evaluation="sometimes"))
  assert str(e.value) == (
      "config.train.evaluation='sometimes' is not one of ['both', 'central', 'federated'], "
      "where the global model is tested: the server's test set, the clients' local test "
      "splits, or both")


def test_summed_client_sums_are_the_union_s_confusion_matrix(runs):
  config, workdir, _, rows = runs["both"]
  exp = build_experiment(config, workdir=workdir)
  state, _ = RoundCheckpointer(workdir).restore(1, exp.algorithm.init(exp.init_params))
  model = exp.algorithm.model(state)
  # By hand: the model's predictions on the whole test set, one call.
  logits = exp.task.logits(model, exp.test_x)
  predicted = np.asarray(logits).argmax(-1)
  losses = np.asarray(exp.task.loss(logits, exp.test_y))
  labels = np.asarray(exp.test_y)
  parts = local_test_parts(exp.test_y, config.data)
  by_hand = np.zeros((3, 10, 10), np.int64)
  for client, rows_of_client in enumerate(parts):
    for i in rows_of_client:
      by_hand[client, labels[i], predicted[i]] += 1

  sums = SimulatedClientTests(exp)(exp, state)  # what the run's row reports
  np.testing.assert_array_equal(sums.partition_ids, [0, 1, 2])
  np.testing.assert_array_equal(sums.confusion, by_hand)
  np.testing.assert_array_equal(sums.num_examples, [len(p) for p in parts])
  union = np.concatenate(parts)
  assert sorted(union) == list(range(TEST_EXAMPLES))
  union_confusion = np.zeros((10, 10), np.int64)
  np.add.at(union_confusion, (labels[union], predicted[union]), 1)
  np.testing.assert_array_equal(sums.confusion.sum(axis=0), union_confusion)

  row = rows[-1]
  assert FED_ROW_KEYS <= set(row)
  assert row["fed_test_accuracy"] == accuracy_score(labels[union], predicted[union])
  assert row["fed_test_macro_f1"] == pytest.approx(
      f1_score(labels[union], predicted[union], average="macro"), abs=1e-12)
  assert row["fed_test_loss"] == pytest.approx(losses.mean(), rel=1e-5)
  accuracies = [np.mean(labels[p] == predicted[p]) for p in parts]
  assert row["fed_test_client_accuracy_min"] == min(accuracies)
  assert row["fed_test_client_accuracy_max"] == max(accuracies)
  assert row["fed_test_client_accuracy_mean"] == pytest.approx(np.mean(accuracies), abs=1e-12)
  assert row["fed_test_client_accuracy_std"] == pytest.approx(np.std(accuracies), abs=1e-12)
  assert (row["fed_test_examples"], row["fed_test_clients"]) == (TEST_EXAMPLES, 3)
  # Traffic: the model to each of the 3 clients; back, each client's id, count, loss sum
  # and seconds, and every non-zero cell of its confusion matrix as an index and a count.
  assert row["fed_test_download_bytes"] == 3 * tree_bytes(model)
  assert row["fed_test_upload_bytes"] == 8 * (3 * 4 + 2 * np.count_nonzero(by_hand))
  # Both evaluations counted as evaluation queries; training's counters untouched.
  assert row["eval_bb_examples"] == 2 * TEST_EXAMPLES


def test_central_leaves_rows_and_summary_as_they_were(runs):
  _, _, summary, rows = runs["central"]
  assert [set(r) for r in rows] == [CENTRAL_ROW_KEYS]
  assert set(summary) == CENTRAL_SUMMARY_KEYS
  assert rows[0]["eval_bb_examples"] == TEST_EXAMPLES
  # 'both' adds the fed_test_* columns and their queries, and changes nothing else.
  _, _, both_summary, both_rows = runs["both"]
  assert set(both_rows[0]) == CENTRAL_ROW_KEYS | FED_ROW_KEYS
  timing = {"round_seconds", "wall_seconds", "eval_bb_examples"}
  for key in CENTRAL_ROW_KEYS - timing:
    assert both_rows[0][key] == rows[0][key], key
  for key in CENTRAL_SUMMARY_KEYS - {"wall_seconds", "query_counters"}:
    assert both_summary[key] == summary[key], key
  assert set(both_summary) - CENTRAL_SUMMARY_KEYS == {
      "evaluation", "best_fed_test_accuracy",
      *(f"final_{k}" for k in FED_ROW_KEYS - FED_TRAFFIC_KEYS)}
  assert both_summary["final_fed_test_accuracy"] == both_rows[-1]["fed_test_accuracy"]


def test_federated_only_tests_on_the_clients_alone(runs):
  _, workdir, summary, rows = runs["federated"]
  central_rows = runs["central"][3]
  assert set(rows[0]) == (CENTRAL_ROW_KEYS | FED_ROW_KEYS) - {
      "test_accuracy", "test_loss", "test_macro_f1", "test_per_class_recall",
      "collapsed_to_majority"}
  assert rows[0]["eval_bb_examples"] == TEST_EXAMPLES  # the clients' rows only
  assert rows[0]["train_loss"] == central_rows[0]["train_loss"]
  assert rows[0]["fed_test_accuracy"] == runs["both"][3][0]["fed_test_accuracy"]
  assert summary["evaluation"] == "federated"
  assert summary["final_accuracy"] is None and summary["best_accuracy"] is None
  assert summary["final_fed_test_accuracy"] == rows[0]["fed_test_accuracy"]
  assert os.path.getsize(os.path.join(workdir, "accuracy.png")) > 0


def test_a_run_recorded_before_the_field_existed_resumes(tmp_path):
  """``train.evaluation`` may differ on resume (``records.RESUMABLE_FIELDS``): a workdir
  whose config.json has no such field (written before it existed) takes the new config."""
  config = smoke()
  old = json.loads(config.to_json())
  del old["train"]["evaluation"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  records.check_or_write_config(str(tmp_path), config)  # no ValueError
  assert json.loads((tmp_path / "config.json").read_text())["train"]["evaluation"] == "central"
  with pytest.raises(ValueError, match=r"a different config \(seed: 0 -> 1\)"):
    records.check_or_write_config(str(tmp_path), smoke(seed=1))  # other fields still refused


def test_a_field_added_since_resumes_only_at_the_value_the_run_had(tmp_path):
  """``records.ADDED_FIELDS``: a recorded config without ``prompt.rank`` (added with the
  intrinsic frame) resumes under the new config holding its listed value, not another."""
  config = smoke()
  old = json.loads(config.to_json())
  del old["prompt"]["rank"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  with pytest.raises(ValueError, match=r"a different config \(prompt.rank: None -> 3\)"):
    records.check_or_write_config(str(tmp_path), smoke(prompt__rank=3))
  records.check_or_write_config(str(tmp_path), config)  # rank 2: what the run had
  assert json.loads((tmp_path / "config.json").read_text())["prompt"]["rank"] == 2
