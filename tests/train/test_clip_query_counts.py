"""CLIP + BlackVIP end to end: Fed-BBPT's counters and both baselines equal the real CLIP traffic.

``configs/clip_blackvip.py:tiny`` on a tiny CoOp Oxford Pets folder (3 classes, 2 shots,
2 clients, one round; ``tests/helpers/clip_runs.py``): the tiny CLIP at 224 px answers
over the dataset's 3 classes (identity label mapping: no setup query), BlackVIP's
coordinator on the tiny MAE prompts it, SPSA-GC trains it. The black box is wrapped in
``CountingBlackBox`` (a run-time callback on every forward inside the compiled programs),
as ``test_query_counts.py`` does for the other families: what reached CLIP must equal
what the run recorded. FedOne and centralized: ``test_clip_algorithm_counts.py``.
"""

from tests.helpers.clip_runs import COUNTS, counted_clip_run, expected_clip_traffic


def test_clip_fedbbpt_and_both_baselines_count_the_real_clip_traffic(tmp_path):
  config, summary, counting = counted_clip_run("fedbbpt", tmp_path, baselines=True)
  assert (counting.name, counting.input_shape, counting.output_size) == ("clip", (224, 224, 3), 3)
  counters = summary["query_counters"]
  batch, k, n_clients = config.client.batch_size, config.client.local_steps, 2
  candidates = 2 * config.zo.num_directions
  n_test = sum(COUNTS["test"])
  assert (summary["test_examples"], summary["num_clients"], summary["cohort_size"]) == \
      (n_test, n_clients, n_clients)
  # every client's K steps of all candidates x minibatch; no label-mapping query
  steps = n_clients * k
  assert counters == {"bb_calls": steps * candidates, "candidates": steps * candidates,
                      "bb_examples": steps * candidates * batch, "client_activations": 2,
                      "eval_bb_examples": n_test, "generator_calls": 0}
  assert summary["local_only_black_box_queries"] == n_clients * k * candidates * batch
  assert counting.counts() == expected_clip_traffic("fedbbpt", config, summary, baselines=True)
  assert counting.counts() == {"examples": 32 + 7 + 7 + 32 + 2 * 7, "calls": 4 + 1 + 3 + 4}
