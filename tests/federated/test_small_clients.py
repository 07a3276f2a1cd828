"""Clients smaller than a minibatch: what sampling does, and the build-time warning."""

import jax
import numpy as np

from configs.fmnist_effnet import get_config
from fedbbpt_jax.federated import small_client_warning
from fedbbpt_jax.federated.algorithms.client import sample_minibatch
from fedbbpt_jax.train.driver import client_sizes_text, prepare


def test_a_small_client_cycles_its_rows_in_a_random_order():
  for seed in range(5):
    idx = np.asarray(sample_minibatch(jax.random.key(seed), 3, 6, 8))
    counts = np.bincount(idx, minlength=6)
    assert counts[3:].sum() == 0                       # padded rows never drawn
    assert sorted(counts[:3].tolist()) == [2, 3, 3]    # floor(8/3) or ceil(8/3) times each
    np.testing.assert_array_equal(idx[3:6], idx[:3])   # the order, cycled
    np.testing.assert_array_equal(idx[6:], idx[:2])


def test_the_warning_names_how_many_clients_and_the_smallest_size():
  assert small_client_warning([8, 40, 9], 8) is None
  assert small_client_warning([5, 40, 3], 8) == (
      "warning: 2 of 3 clients hold fewer examples than client.batch_size=8 (smallest: 3); "
      "such a client's minibatch is its rows in a fresh random order, cycled to the batch size "
      "(no sampling with replacement, no masking), so each row counts up to 3 times in one "
      "minibatch's loss")
  assert small_client_warning([0, 40], 8).endswith(
      "up to 8 times in one minibatch's loss; 1 client(s) hold no example at all and would "
      "score a padding row")


def test_building_a_run_with_small_clients_logs_the_warning_once(tmp_path):
  config = get_config("smoke")
  config.data.examples_per_client = 5                  # < client.batch_size = 8
  lines = []
  exp, _ = prepare(config, [str(tmp_path)], log=lines.append)
  assert np.asarray(exp.clients.num_examples).tolist() == [5, 5, 5]
  assert [line for line in lines if line.startswith("warning")] == [
      small_client_warning([5, 5, 5], 8)]
  assert "3 of 3 clients" in lines[-1] and "(smallest: 5)" in lines[-1]


def test_the_log_lists_a_few_clients_sizes_and_summarises_many():
  assert client_sizes_text([3, 5, 4]) == "[3, 5, 4]"
  sizes = [60] * 997 + [11, 154, 20]
  assert client_sizes_text(sizes) == "60,005 in all, min 11, median 60, max 154"
