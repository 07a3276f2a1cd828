"""CLIP + BlackVIP end to end: FedOne's and centralized training's counters equal the real
CLIP traffic (the tiny setting of ``test_clip_query_counts.py``, baselines off)."""

import pytest

from tests.helpers.clip_runs import counted_clip_run, expected_clip_traffic


@pytest.mark.parametrize("algorithm, activations, cohort", [("fedone", 1, 1),
                                                           ("centralized", 1, 2)])
def test_clip_fedone_and_centralized_count_the_real_clip_traffic(algorithm, activations, cohort,
                                                                 tmp_path):
  config, summary, counting = counted_clip_run(algorithm, tmp_path, baselines=False)
  counters = summary["query_counters"]
  steps = activations * config.client.local_steps * (cohort if algorithm == "centralized" else 1)
  candidates, batch = 2 * config.zo.num_directions, config.client.batch_size
  assert (summary["cohort_size"], counters["client_activations"]) == (cohort, activations)
  assert counters["bb_examples"] == steps * candidates * batch
  assert counters["bb_calls"] == counters["candidates"] == steps * candidates
  assert counters["eval_bb_examples"] == summary["test_examples"] == 7
  assert counting.counts() == expected_clip_traffic(algorithm, config, summary, baselines=False)
  assert counting.counts()["calls"] == steps + 1
