"""The deployment's round, in one process: ``FedBBPTStrategy`` -> the real ``ClientApp``
(called as ``app(message, context)``) -> ``aggregate_train``, against the simulated round.

No Flower process runs here (``test_deployment.py`` runs the real ones); the messages
are real ``Message`` objects, ids assigned as a Grid assigns them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict

from configs.fmnist_effnet import get_config
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.client_app import app as client_app
from fedbbpt_jax.flower.server_app import check_deployable, setup_files
from fedbbpt_jax.flower.strategy import FedBBPTStrategy
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated.algorithms.server import client_keys, round_keys
from fedbbpt_jax.tasks.federated_evaluation import federated_report
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.client_tests import SimulatedClientTests
from tests.helpers.tiny_models import tiny

NODE_IDS = {0: 101, 1: 202, 2: 303}



def smoke(upload="dense", **server):
  c = tiny(get_config("smoke"))
  c.baselines.local_only = False
  c.client.upload = upload
  c.server.update(server)
  return c


def deliver(messages, tmp_path, drop=(), corrupt=()):
  """Every message to the real ClientApp; replies of ``drop`` partitions are lost,
  those of ``corrupt`` carry an upload of the wrong structure."""
  replies = []
  for message in messages:
    message.metadata.__dict__["_message_id"] = message.object_id  # as Grid.push_messages
    pid = {n: p for p, n in NODE_IDS.items()}[message.metadata.dst_node_id]
    if pid in drop:
      continue
    context = Context(run_id=1, node_id=message.metadata.dst_node_id,
                      node_config={"partition-id": pid, "workdir": str(tmp_path / f"n{pid}")},
                      state=RecordDict(), run_config={})
    reply = client_app(message, context)
    if pid in corrupt:
      reply.content[M.UPLOAD] = ArrayRecord({"delta": reply.content[M.UPLOAD]["delta/pattern"]})
    replies.append(reply)
  return replies


def deployed_rounds(config, tmp_path, rounds, **faults):
  (tmp_path / "server").mkdir()
  exp = build_experiment(config, workdir=str(tmp_path / "server"))
  notes = []
  strategy = FedBBPTStrategy(exp, exp.algorithm.init(exp.init_params), NODE_IDS,
                             setup_files(exp, str(tmp_path / "server")), log=notes.append)
  for r in range(rounds):
    messages = list(strategy.configure_train(r + 1, None, None, grid=None))
    strategy.aggregate_train(r + 1, deliver(messages, tmp_path, **faults))
  return exp, strategy, notes


def simulated_rounds(exp, rounds):
  state = exp.algorithm.init(exp.init_params)
  step = jax.jit(exp.algorithm.apply)
  for _ in range(rounds):
    state, metrics = step(state, exp.clients, exp.root_key, exp.hparams)
  return state, metrics


@pytest.mark.parametrize("aggregator", ["weighted_mean", "dp_gaussian"])
def test_strategy_round_equals_simulated_round(tmp_path, aggregator):
  """Dense uploads (seed uploads: the loopback test and tests/train/test_seed_upload_run),
  through the plain and the DP rule (same noise: the simulation's server key)."""
  config = smoke(aggregator=aggregator)
  if aggregator == "dp_gaussian":  # read only by the DP rule (a set, unread field is refused)
    config.server.dp.clip_norm = 0.05  # small enough to clip (asserted below)
  exp, strategy, notes = deployed_rounds(config, tmp_path, rounds=2)
  state, metrics = simulated_rounds(exp, 2)
  assert notes == []
  assert int(strategy.state.round) == 2
  # Float tolerance: the local EfficientNet scores 1 client's batch on a node and the
  # cohort's 3 in one simulated call; XLA's kernels round differently per batch size
  # (measured 4e-6 on entries of 0.01-0.07 after two rounds).
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(strategy.state), strict=True):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)
  m = strategy.last_metrics
  assert float(m["train_loss"]) == pytest.approx(float(metrics["train_loss"]), rel=1e-4)
  assert int(m["upload_bytes"]) == int(metrics["upload_bytes"])
  assert int(m["download_bytes"]) == int(metrics["download_bytes"])
  assert strategy.last_counters["bb_examples"] == exp.round_cost.bb_examples
  if aggregator == "dp_gaussian":
    clipped = float(m["aggregator"]["dp_clipped_fraction"])
    assert clipped == pytest.approx(float(metrics["aggregator"]["dp_clipped_fraction"]))
    assert clipped > 0


def test_missing_and_malformed_replies_count_as_dropped(tmp_path):
  """Partition 1 never answers, partition 2's upload has the wrong structure: the
  round equals a simulated round in which only partition 0 reported."""
  config = smoke()
  exp, strategy, notes = deployed_rounds(config, tmp_path, rounds=1, drop=(1,), corrupt=(2,))
  assert any("partition 1: no reply in time" in n for n in notes)
  assert any("partition 2 (node 303): reply refused" in n and "missing ['delta/pattern', " in n
             and "unexpected ['delta']" in n
             for n in notes), notes
  assert int(strategy.last_metrics["survivors"]) == 1
  assert strategy.last_counters["client_activations"] == 1
  # Partition 0 alone: the weighted mean of one delta is that delta (server lr 1, no
  # momentum in the first step of SGD with momentum).
  _, k_clients = round_keys(exp.root_key, 0)
  one = exp.algorithm.client_update(exp.init_params, jax.tree.map(lambda a: a[0], exp.clients),
                                    client_keys(k_clients, jnp.asarray([0]))[0], exp.hparams, 0)
  expected = jax.tree.map(lambda p, d: p + config.server.lr * d, exp.init_params, one.delta)
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(strategy.state.params)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5)


def test_round_without_any_reply_keeps_the_model(tmp_path):
  exp, strategy, notes = deployed_rounds(smoke(), tmp_path, rounds=1, drop=(0, 1, 2))
  assert bool(strategy.last_metrics["no_survivors"]) and int(strategy.state.round) == 1
  for a, b in zip(jax.tree.leaves(exp.init_params), jax.tree.leaves(strategy.state.params)):
    np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
  assert len(notes) == 3


@pytest.mark.parametrize("field, value, message", [
    ("attack.kind", "sign_flip", "simulated attacks do not run in a deployment"),
    ("server.dropout", 0.2, "nodes that do not answer within 'round-timeout'"),
])
def test_deployment_refuses_simulation_only_settings(field, value, message):
  config = smoke()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("'", ".")):
    check_deployable(config)


def test_evaluate_replies_are_the_simulated_clients_sums(tmp_path):
  """Federated evaluation through the real ClientApp's ``evaluate`` handler: every node's
  sums for the global model on its local test split equal the simulation's for that
  client (same counts; loss sums to float rounding); a node that does not answer or
  sends counts that do not fit is left out, named in a note."""
  config = smoke()
  config.train.evaluation = "both"
  exp, strategy, notes = deployed_rounds(config, tmp_path, rounds=0)  # the initial model
  simulated = SimulatedClientTests(exp)(exp, strategy.state)
  messages = list(strategy.configure_evaluate(1, None, None, grid=None))
  assert [(m.metadata.message_type, m.metadata.dst_node_id) for m in messages] == [
      ("evaluate", 101), ("evaluate", 202), ("evaluate", 303)]
  replies = deliver(messages, tmp_path)
  record = strategy.aggregate_evaluate(1, replies)
  got = strategy.last_test_sums
  np.testing.assert_array_equal(got.partition_ids, [0, 1, 2])
  np.testing.assert_array_equal(got.confusion, simulated.confusion)
  np.testing.assert_array_equal(got.num_examples, simulated.num_examples)
  assert got.num_examples.sum() == 200 and got.num_examples.min() > 0  # the smoke test set
  np.testing.assert_allclose(got.loss_sum, simulated.loss_sum, rtol=1e-5)
  report = federated_report(simulated)
  assert record["fed_test_accuracy"] == report["fed_test_accuracy"]
  assert record["fed_test_clients"] == 3 and notes == []
  # What the three replies carried, number by number (8 bytes each), is the upload counted.
  numbers = sum(len(v) if isinstance(v, list) else 1
                for reply in replies for v in dict(reply.content[M.TEST_SUMS]).values())
  assert record["fed_test_upload_bytes"] == 8 * numbers

  messages = list(strategy.configure_evaluate(1, None, None, grid=None))
  replies = deliver(messages, tmp_path, drop=(1,))
  sums = dict(replies[1].content[M.TEST_SUMS])  # partition 2's: one count too many
  replies[1].content[M.TEST_SUMS] = MetricRecord(
      {**sums, "confusion-counts": [c + (i == 0) for i, c in enumerate(sums["confusion-counts"])]})
  record = strategy.aggregate_evaluate(1, replies)
  np.testing.assert_array_equal(strategy.last_test_sums.partition_ids, [0])
  np.testing.assert_array_equal(strategy.last_test_sums.confusion, simulated.confusion[:1])
  assert record["fed_test_clients"] == 1
  assert strategy.last_test_sums.clients_asked == 3  # all three received the model
  assert record["fed_test_examples"] == simulated.num_examples[0]
  n2 = int(simulated.num_examples[2])
  assert notes == [
      f"round 1 evaluation: partition 2: test sums refused: the confusion counts (sum {n2 + 1}, "
      f"least 1) do not add up to num-examples={n2} with every count >= 1",
      "round 1 evaluation: partition 1: no test sums in time"]
