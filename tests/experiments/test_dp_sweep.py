"""The accuracy-vs-ε sweep definition loads, validates and reaches the ε it documents."""

import pytest

from experiments.sweep import is_complete, plan_groups
from experiments.sweep_points import load_sweep
from fedbbpt_jax.federated.aggregation.privacy import dp_settings

SWEEP = "configs/sweeps/dp_epsilon.py"


@pytest.fixture(scope="module")
def points():
  return load_sweep(SWEEP)  # builds and validates every point's config


def test_every_point_is_valid_and_the_dp_points_reach_their_epsilon(points):
  assert len(points) == 30  # 2 tracks x (no DP + 4 ε) x 3 seeds
  reached = {}
  for p in points:
    track, variant, seed = p.name.split("_")
    assert seed in ("s0", "s1", "s2") and p.config.seed == int(seed[1:])
    settings = dp_settings(p.config)
    if variant == "nodp":
      assert settings is None and p.config.server.aggregator == "weighted_mean"
      continue
    target = float(variant.removeprefix("eps"))
    eps = settings.epsilon(p.config.train.rounds)
    assert 0.99 * target <= eps <= target, (p.name, eps)
    assert settings.sampling == "fixed" and settings.delta == 1e-5
    reached[(track, target)] = round(eps, 3)
  assert sorted(reached) == sorted((t, e) for t in ("image", "text") for e in (1, 4, 15, 50))
  # Default sizes: image 10 rounds of all 5 clients, text 8 rounds of 1 of 5.
  for p in points:
    cohort = p.config.server.cohort_size or p.config.data.num_clients
    assert (p.config.train.rounds, cohort) == ({"image": (10, 5), "text": (8, 1)}
                                               [p.name.split("_")[0]])


def test_seeds_of_a_text_point_share_one_program(points, tmp_path):
  workdirs = [str(tmp_path / p.name) for p in points]
  groups = plan_groups(points, workdirs, vmap=True)
  text = [g for g in groups if points[g[0]].name.startswith("text_")]
  assert len(text) == 5 and all(len(g) == 3 for g in text)  # one vmapped program per ε
  for g in text:
    assert len({points[i].name.rsplit("_s", 1)[0] for i in g}) == 1


def test_a_run_stopped_by_its_target_epsilon_counts_as_complete(tmp_path):
  (tmp_path / "summary.json").write_text('{"rounds": 5, "dp_stopped_at_round": 3}')
  (tmp_path / "metrics.jsonl").write_text("".join(f'{{"round": {r}}}\n' for r in (1, 2, 3)))
  assert is_complete(str(tmp_path), 5)
  (tmp_path / "metrics.jsonl").write_text('{"round": 1}\n')
  assert not is_complete(str(tmp_path), 5)
