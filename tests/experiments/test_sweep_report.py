"""The smoke sweep: runs, resumes without new rounds, report rows equal the summaries.

The sweep is ``configs/sweeps/smoke.py``'s points on the tiny image model
(``tests/helpers/tiny_models.py``): what is tested is the sweep's and the report's
bookkeeping, not the frozen network.
"""

import csv
import json
import os

import numpy as np
import pytest

from experiments.report import add_reference_from_csv, parse_references, write_report
from experiments.report_plots import baseline_zero_shot
from experiments.report_records import read_runs
from experiments.sweep import plan_groups, run_sweep
from experiments.sweep_points import SweepError, load_sweep
from fedbbpt_jax.train import validate_config
from fedbbpt_jax.zo import make_estimator
from tests.helpers.tiny_models import IMAGE, register

SMOKE = "configs/sweeps/smoke.py"


@pytest.fixture(scope="module")
def tiny_smoke(tmp_path_factory):
  """A sweep file: the points of ``SMOKE`` with the tiny image model as the black box."""
  register()
  path = tmp_path_factory.mktemp("sweepfile") / "tiny_smoke.py"
  path.write_text("from configs.sweeps.smoke import get_sweep as smoke\n\n\n"
                  "def get_sweep():\n"
                  "  points = smoke()\n"
                  "  for point in points:\n"
                  f"    point['overrides']['blackbox.model'] = {IMAGE!r}\n"
                  "  return points\n")
  return str(path)


def metrics_lines(workdir: str) -> int:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return sum(1 for line in f if line.strip())


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, tiny_smoke):
  workdir = str(tmp_path_factory.mktemp("sweep"))
  entries = run_sweep(tiny_smoke, workdir, log=lambda s: None)
  assert [e["status"] for e in entries] == ["done"] * 4
  return workdir


def test_sweep_runs_every_point_and_lists_it(sweep_dir):
  listing = json.load(open(os.path.join(sweep_dir, "sweep.json")))
  names = [p["name"] for p in listing["points"]]
  assert names == ["smoke_fedbbpt_s0", "smoke_fedbbpt_s1", "smoke_fedone_s0", "smoke_fedone_s1"]
  for name in names:
    summary = json.load(open(os.path.join(sweep_dir, name, "summary.json")))
    assert summary["rounds"] == 2 and metrics_lines(os.path.join(sweep_dir, name)) == 2
  assert json.load(open(os.path.join(sweep_dir, "smoke_fedone_s1", "config.json")))["seed"] == 1
  # --vmap (default): the two seeds of each algorithm ran as one vmapped program.
  assert listing["vmap"] is True
  groups = {p["name"]: p.get("group") for p in listing["points"]}
  assert groups["smoke_fedbbpt_s0"] == groups["smoke_fedbbpt_s1"] == ["smoke_fedbbpt_s0",
                                                                      "smoke_fedbbpt_s1"]
  assert groups["smoke_fedone_s1"] == ["smoke_fedone_s0", "smoke_fedone_s1"]


def test_second_invocation_skips_finished_points(sweep_dir, tiny_smoke):
  before = {p: metrics_lines(os.path.join(sweep_dir, p)) for p in os.listdir(sweep_dir)
            if p.startswith("smoke_")}
  entries = run_sweep(tiny_smoke, sweep_dir, log=lambda s: None)
  assert [e["status"] for e in entries] == ["skipped"] * 4
  after = {p: metrics_lines(os.path.join(sweep_dir, p)) for p in before}
  assert after == before


def test_report_rows_equal_the_summaries(sweep_dir, tmp_path):
  paths = write_report([sweep_dir], str(tmp_path))
  names = {os.path.basename(p) for p in paths}
  assert {"report.md", "report.csv", "accuracy_digits.png"} <= names
  rows = {(r["method"], r["task"]): r for r in csv.DictReader(open(tmp_path / "report.csv"))}
  assert set(rows) == {("Fed-BBPT", "digits"), ("FedOne", "digits"), ("zero-shot", "digits")}
  summaries = {a: [json.load(open(os.path.join(sweep_dir, f"smoke_{a}_s{s}", "summary.json")))
                   for s in (0, 1)] for a in ("fedbbpt", "fedone")}

  def check(row, values, field):
    v = np.asarray(values, np.float64)
    assert float(row[f"{field}_mean"]) == float(v.mean())
    assert float(row[f"{field}_std"]) == float(v.std(ddof=1))

  for algo, method in (("fedbbpt", "Fed-BBPT"), ("fedone", "FedOne")):
    row, ss = rows[(method, "digits")], summaries[algo]
    assert row["seeds"] == "0 1"
    check(row, [s["final_accuracy"] for s in ss], "accuracy")
    check(row, [s["final_macro_f1"] for s in ss], "macro_f1")
    assert float(row["queries_mean"]) == float(np.mean([s["black_box_queries"] for s in ss]))
  check(rows[("zero-shot", "digits")], [s["zero_shot_accuracy"] for s in summaries["fedbbpt"]],
        "accuracy")
  text = open(tmp_path / "report.md").read()
  mean = 100 * np.mean([s["final_accuracy"] for s in summaries["fedone"]])
  assert f"| FedOne | {mean:.2f} ± " in text


def test_bad_override_key_fails_naming_it(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_sweep():\n  return [{'config': 'configs/fmnist_effnet.py:smoke', "
                 "'overrides': {'client.learning_rate': 0.1}, 'name': 'a'}]\n")
  with pytest.raises(SweepError, match=r"client\.learning_rate"):
    run_sweep(str(bad), str(tmp_path / "out"), log=lambda s: None)
  assert not (tmp_path / "out").exists()
  bad.write_text("def get_sweep():\n  return [{'config': 'configs/fmnist_effnet.py:smoke', "
                 "'overrides': {'train.rounds': 'two'}, 'name': 'a'}]\n")
  with pytest.raises(SweepError, match=r"train\.rounds"):
    load_sweep(str(bad))


def _training_examples(config) -> int:
  """Training black-box examples of a run, from the round-cost formulas of train.algorithms."""
  num_cands = make_estimator(config.zo.estimator, config.zo.num_directions).num_candidates
  steps, batch = config.client.local_steps, config.client.batch_size
  cohort = config.server.cohort_size or config.data.num_clients
  per_round = {"fedbbpt": cohort * steps * num_cands,
               "fedone": steps * num_cands,
               "centralized": cohort * steps * num_cands,
               "fedbpt": cohort * (steps * num_cands + 1)}[config.server.algorithm]
  return config.train.rounds * per_round * batch


def test_baselines_sweep_is_valid_and_query_fair():
  points = load_sweep("configs/sweeps/baselines.py")
  # {fedbbpt, fedone, fedbpt, centralized} x {image, text} x 3 seeds + the image ablation
  assert len(points) == 27
  fedbpt = [p for p in points if "fedbpt" in p.name]
  assert len(fedbpt) == 6 and all(p.config.zo.estimator == "cma_es" for p in fedbpt)
  assert all(p.config.prompt.kind == "soft" for p in fedbpt if p.name.startswith("text_"))
  for task in ("image", "text"):
    costs = {p.name: _training_examples(p.config) for p in points if p.name.startswith(task)}
    low, high = min(costs.values()), max(costs.values())
    assert high / low < 1.05, costs  # every method spends (about) the same training queries


def fake_run(root, name, config, summary, accs):
  d = root / name
  d.mkdir()
  (d / "config.json").write_text(json.dumps(config))
  (d / "summary.json").write_text(json.dumps(summary))
  (d / "metrics.jsonl").write_text("".join(
      json.dumps({"round": i + 1, "test_accuracy": a, "bb_examples": 10 * (i + 1)}) + "\n"
      for i, a in enumerate(accs)))


def test_local_only_rows_and_spread_plot_come_from_fedbbpt_summaries(tmp_path):
  text_cfg = lambda seed: {"seed": seed, "data": {"name": "drug_reviews", "task": "sentiment"},
                           "task": {"family": "text"}, "server": {"algorithm": "fedbbpt"}}
  for seed, lo in ((0, [0.5, 0.7]), (1, [0.4, 0.6])):
    fake_run(tmp_path, f"r{seed}", text_cfg(seed),
             {"algorithm": "fedbbpt", "final_accuracy": 0.6 + seed / 10, "final_macro_f1": 0.5,
              "black_box_queries": 100, "zero_shot_accuracy": 0.3, "zero_shot_macro_f1": 0.2,
              "local_only_accuracy": float(np.mean(lo)), "local_only_client_accuracies": lo,
              "local_only_macro_f1": 0.25 + seed / 10, "local_only_black_box_queries": 80},
             [0.5, 0.6 + seed / 10])
  paths = write_report([str(tmp_path)])
  assert os.path.basename(paths[-1]) == "client_spread.png"
  rows = {r["method"]: r for r in csv.DictReader(open(tmp_path / "report.csv"))}
  lo = rows["local-only (mean over clients)"]
  assert lo["task"] == "drug_reviews/sentiment"
  assert float(lo["accuracy_mean"]) == float(np.mean([0.6, 0.5]))
  assert float(lo["queries_mean"]) == 80.0
  assert float(lo["macro_f1_mean"]) == float(np.mean([0.25, 0.35]))
  assert float(rows["Fed-BBPT"]["accuracy_std"]) == float(np.std([0.6, 0.7], ddof=1))


def test_baselines_sweep_groups_its_seeds(tmp_path):
  points = load_sweep("configs/sweeps/baselines.py")
  workdirs = [str(tmp_path / p.name) for p in points]
  groups = plan_groups(points, workdirs, vmap=True)
  # Points named <task>_<method>_s<seed> differ only in the seed: one vmapped program per
  # method, the image points too (each member re-derives its own label mapping).
  methods = sorted({p.name.rsplit("_s", 1)[0] for p in points})
  assert sorted(points[g[0]].name.rsplit("_s", 1)[0] for g in groups) == methods
  for g in groups:
    assert len(g) > 1 and len({points[i].name.rsplit("_s", 1)[0] for i in g}) == 1
  assert any(points[g[0]].name.startswith("image_") for g in groups)
  assert plan_groups(points, workdirs, vmap=False) == [[i] for i in range(len(points))]


def test_decentralized_sweep_is_valid_and_query_fair():
  points = load_sweep("configs/sweeps/decentralized.py")
  assert len(points) == 33  # 11 variants x 3 seeds
  names = {p.name.rsplit("_s", 1)[0] for p in points}
  assert {"fedbbpt", "ring_dfedavg", "torus_dfedsam", "torus_dfedsam_q4",
          "fully_connected_dfedsam"} <= names
  per_round = set()
  for p in points:
    c = p.config
    cands = make_estimator(c.zo.estimator, c.zo.num_directions).num_candidates
    estimates = 2 if c.server.algorithm == "dfedsam" and c.decentralized.rho > 0 else 1
    per_round.add(c.data.num_clients * c.client.local_steps * estimates * cands
                  * c.client.batch_size)
  assert per_round == {9 * 10 * 4 * 32}  # every method spends the same queries per round


def test_decentralized_runs_get_their_own_table_and_consensus_plot(tmp_path):
  config = lambda seed: {"seed": seed, "data": {"name": "digits"}, "task": {"family": "image"},
                         "server": {"algorithm": "dfedsam"}}
  for seed in (0, 1):
    d = tmp_path / f"ring_s{seed}"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config(seed)))
    (d / "summary.json").write_text(json.dumps(
        {"algorithm": "dfedsam", "method": "DFedSAM (ring)", "final_accuracy": 0.5 + seed / 10,
         "final_macro_f1": 0.4, "black_box_queries": 100, "final_client_accuracy_mean": 0.45,
         "final_client_accuracy_worst": 0.3 + seed / 10, "final_consensus_distance": 0.01,
         "spectral_gap": 0.38}))
    (d / "metrics.jsonl").write_text("".join(
        json.dumps({"round": i + 1, "test_accuracy": 0.5, "bb_examples": 10 * (i + 1),
                    "consensus_distance": 0.1 / (i + 1)}) + "\n" for i in range(3)))
  paths = write_report([str(tmp_path)])
  assert os.path.join(str(tmp_path), "consensus_digits.png") in paths
  report = open(tmp_path / "report.md").read()
  assert "### Decentralized: digits" in report
  row = [line for line in report.splitlines() if line.startswith("| DFedSAM (ring) (n=2)")][0]
  assert "55.00 ± 7.07" in row and "35.00 ± 7.07" in row and "0.0100 ± 0.0000" in row


def test_the_demo_seeds_remapping_their_labels_share_one_program(tmp_path):
  points = load_sweep("configs/sweeps/demo_seeds.py")
  workdirs = [str(tmp_path / p.name) for p in points]
  assert points[0].config.task.remap_every == 2  # the demo's iterative label mapping
  assert plan_groups(points, workdirs, vmap=True) == [[0, 1, 2]]
  assert plan_groups(points, workdirs, vmap=False) == [[0], [1], [2]]


def test_image_prompts_sweep_changes_only_the_generator_and_the_seed():
  points = load_sweep("configs/sweeps/image_prompts.py")
  assert len(points) == 15
  kinds = {(p.config.prompt.kind, p.config.prompt.encoder) for p in points
           if p.config.prompt.kind != "frame"}
  assert kinds == {("frame_mixture", "efficientnet_lite0"), ("frame_mixture", "random"),
                   ("coordinator", "efficientnet_lite0"), ("coordinator", "random")}
  base = points[0].config
  for p in points:  # same data, budget and schedule for every generator
    assert p.config.client.lr == base.client.lr and p.config.train.rounds == base.train.rounds
    assert p.config.zo.num_directions == base.zo.num_directions
    assert not p.config.baselines.local_only


def test_zip_sweep_groups_each_variants_seeds_and_validates(tmp_path):
  points = load_sweep("configs/sweeps/zip_prompts.py")
  assert len(points) == 15
  for p in points:
    validate_config(p.config)
  variants = {(p.config.prompt.kind, p.config.zo.estimator) for p in points}
  assert variants == {("frame", "spsa_gc"), ("intrinsic_frame", "spsa_gc"),
                      ("intrinsic_frame", "spsa_clip"), ("intrinsic_frame", "spsa_gc_clip"),
                      ("frame", "spsa_gc_clip")}
  workdirs = [str(tmp_path / p.name) for p in points]
  assert plan_groups(points, workdirs, vmap=True) == [[i, i + 1, i + 2] for i in range(0, 15, 3)]


def test_dp_runs_get_an_accuracy_against_epsilon_table_and_plot(tmp_path):
  def write_run(name, seed, accuracy, dp=None):
    d = tmp_path / name
    d.mkdir()
    config = {"seed": seed, "data": {"name": "digits"}, "task": {"family": "image"},
              "server": {"algorithm": "fedbbpt",
                         "aggregator": "dp_gaussian" if dp else "weighted_mean",
                         "dp": {"noise_multiplier": dp[0] if dp else 1.0}}}
    summary = {"algorithm": "fedbbpt", "final_accuracy": accuracy, "final_macro_f1": 0.3,
               "black_box_queries": 100, "zero_shot_accuracy": 0.2}
    if dp:
      summary.update(dp_epsilon=dp[1], dp_delta=1e-5, dp_noise_multiplier=dp[0],
                     dp_clip_norm=1.0)
    (d / "config.json").write_text(json.dumps(config))
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "metrics.jsonl").write_text(json.dumps(
        {"round": 1, "test_accuracy": accuracy, "bb_examples": 100,
         **({"dp_clipped_fraction": 0.5 + seed / 4} if dp else {})}) + "\n")

  for seed in (0, 1):
    write_run(f"nodp_s{seed}", seed, 0.50 + seed / 100)
    write_run(f"eps1_s{seed}", seed, 0.20 + seed / 100, dp=(8.0, 1.0))
    write_run(f"eps10_s{seed}", seed, 0.40 + seed / 100, dp=(1.5, 10.0))
    write_run(f"clip_s{seed}", seed, 0.48 + seed / 100, dp=(0.0, float("inf")))
  paths = write_report([str(tmp_path)])
  assert os.path.join(str(tmp_path), "privacy_digits.png") in paths
  report = open(tmp_path / "report.md").read()
  assert "### Accuracy against privacy (DP-FedAvg): digits" in report
  lines = report.splitlines()
  rows = [line for line in lines if line.startswith("| DP (n=2)")]
  assert rows[0].startswith("| DP (n=2) | 1 (1e-05) | 8 | 1 | 20.50 ± 0.71 |")  # ε ascending
  assert rows[1].startswith("| DP (n=2) | 10 (1e-05) | 1.5 | 1 | 40.50 ± 0.71 |")
  # No-DP gain kept: (20.5 - 20) / (50.5 - 20) and (40.5 - 20) / 30.5; clipped share, last
  # round, over seeds.
  assert rows[0].endswith("| 2% | 0.62 ± 0.18 |")
  assert rows[1].endswith("| 67% | 0.62 ± 0.18 |")
  assert any(line.startswith("| no DP (n=2) | ∞ | – | – | 50.50 ± 0.71 |") for line in lines)
  # Noise multiplier 0 (ε = ∞): the clipped aggregate alone, a row of its own.
  assert any(line.startswith("| clipping only, no noise (n=2) | inf (1e-05) | 0 | 1 | "
                             "48.50 ± 0.71 | 0.300 ± 0.000 | 93% |") for line in lines)
  assert "| zero-shot | – | – | – | 20.00 ± 0.00 | – | – | – |" in report

  # Against a reference accuracy of the task (e.g. the strongest unprompted mapping): each
  # seed's accuracy minus it, in points.
  write_report([str(tmp_path)], references=parse_references(["digits=top-50 mapping:0.45"]))
  lines = open(tmp_path / "report.md").read().splitlines()
  assert "| method | digits vs top-50 mapping (45.00) |" in lines
  # ε = 10 runs: 40 and 41 against 45; no DP: 50 and 51.
  rows = [line for line in lines if line.startswith("| Fed-BBPT") and "-4.50 ± 0.71 |" in line]
  assert len(rows) == 1 and "noise_multiplier=1.5" in rows[0]
  assert any(line.startswith("| Fed-BBPT [server.aggregator=weighted_mean")
             and line.endswith("| +5.50 ± 0.71 |") for line in lines)
  with pytest.raises(ValueError, match="--reference='digits=0.45': expected TASK=NAME:ACCURACY"):
    parse_references(["digits=0.45"])
  # A report whose runs are gone gets the same table from its report.csv alone, appended
  # once: a second call replaces it.
  def reference_block(text_lines):
    start = next(i for i, line in enumerate(text_lines) if "vs top-50 mapping" in line)
    end = next(i for i in range(start, len(text_lines) + 1)
               if i == len(text_lines) or not text_lines[i].startswith("|"))
    return text_lines[start:end]

  runs_table = reference_block(lines)
  os.makedirs(tmp_path / "old")
  for name in ("report.md", "report.csv"):
    (tmp_path / "old" / name).write_bytes((tmp_path / name).read_bytes())
  (tmp_path / "old" / "report.md").write_text("# Sweep report\n\nold tables\n")
  for _ in range(2):
    add_reference_from_csv(str(tmp_path / "old"), parse_references(["digits=top-50 mapping:0.45"]))
  old = (tmp_path / "old" / "report.md").read_text()
  assert old.startswith("# Sweep report\n\nold tables\n\n<!-- reference table") \
      and old.count("<!-- reference table from report.csv -->") == 1
  csv_table = reference_block(old.splitlines())
  assert csv_table == runs_table and len(csv_table) == 6  # header, rule, 4 variants
  with pytest.raises(ValueError, match="no --reference names a task"):
    add_reference_from_csv(str(tmp_path / "old"), parse_references(["cifar=x:0.5"]))
  # The accuracy figure's zero-shot line comes from the Fed-BBPT runs even when every one of
  # them is a labelled variant (no method is plain "Fed-BBPT" here).
  runs = read_runs([str(tmp_path)])
  assert all(r.method.startswith("Fed-BBPT [") for r in runs)
  assert baseline_zero_shot(runs) == pytest.approx(0.2)


def test_cross_device_dp_sweep_differs_only_in_the_servers_aggregate():
  points = load_sweep("configs/sweeps/dp_cross_device.py")
  assert len(points) == 15
  by_name = {p.name: p.config for p in points}
  for seed in (0, 1, 2):
    plain = by_name[f"nodp_s{seed}"]
    assert plain.server.aggregator == "weighted_mean" and plain.server.sampling == "poisson"
    for eps in (8, 4, 2):
      dp = by_name[f"eps{eps}_s{seed}"]
      validate_config(dp)
      assert (dp.server.aggregator, dp.server.dp.target_epsilon) == ("dp_gaussian", eps)
      assert dp.server.dp.noise_multiplier == -1.0  # calibrated to the target
      for field in ("seed", "data", "client", "zo", "train", "task"):  # same cohorts, queries
        assert dp[field] == plain[field], field
    clip = by_name[f"cliponly_s{seed}"]
    assert (clip.server.dp.noise_multiplier, clip.server.dp.target_epsilon) == (0.0, 0.0)
    assert clip.data == plain.data and clip.train == plain.train


def test_cross_device_clip_sweep_is_the_eps8_points_with_a_smaller_clip_only():
  original = {p.name: p.config for p in load_sweep("configs/sweeps/dp_cross_device.py")}
  points = load_sweep("configs/sweeps/dp_cross_device_clip.py")
  assert [p.name for p in points] == [f"eps8_clip025_s{s}" for s in (0, 1, 2)]
  for seed, p in enumerate(points):
    validate_config(p.config)
    reference = original[f"eps8_s{seed}"]
    assert p.config.server.dp.clip_norm == 0.25 and reference.server.dp.clip_norm == 1.0
    p.config.server.dp.clip_norm = 1.0
    assert p.config == reference


def test_dp_runs_at_one_epsilon_with_two_clip_norms_are_two_rows(tmp_path):
  for seed in (0, 1):
    for clip, accuracy in ((1.0, 0.40), (0.25, 0.46)):
      d = tmp_path / f"s{seed}_clip{clip}"
      d.mkdir()
      config = {"seed": seed, "data": {"name": "digits"}, "task": {"family": "image"},
                "server": {"algorithm": "fedbbpt", "aggregator": "dp_gaussian",
                           "dp": {"noise_multiplier": 1.5, "clip_norm": clip}}}
      summary = {"algorithm": "fedbbpt", "final_accuracy": accuracy + seed / 100,
                 "final_macro_f1": 0.3, "black_box_queries": 100, "zero_shot_accuracy": 0.2,
                 "dp_epsilon": 10.0, "dp_delta": 1e-5, "dp_noise_multiplier": 1.5,
                 "dp_clip_norm": clip}
      (d / "config.json").write_text(json.dumps(config))
      (d / "summary.json").write_text(json.dumps(summary))
      (d / "metrics.jsonl").write_text(json.dumps({"round": 1, "test_accuracy": accuracy,
                                                   "bb_examples": 100}) + "\n")
  write_report([str(tmp_path)])
  rows = [line for line in open(tmp_path / "report.md").read().splitlines()
          if line.startswith("| DP (n=2)")]
  # Same ε, a row per clip norm (the smaller S first), each over its own two seeds.
  assert [r.split(" | ")[3:5] for r in rows] == [["0.25", "46.50 ± 0.71"], ["1", "40.50 ± 0.71"]]
