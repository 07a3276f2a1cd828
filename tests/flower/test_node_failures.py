"""A node that fails: refused set-up file names, error replies, a seed-download checksum
mismatch. In one process: the real ClientApp gets real messages; a ClientApp that raises
answers the error reply a SuperNode builds (``tests/helpers/inprocess_grid.client_reply``).
"""

import json
import os

import jax
import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.constant import ErrorCode

from configs.fmnist_effnet import get_config
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower.node import run_directory, write_setup_files
from fedbbpt_jax.flower.seed_download import STATE_FILE, load_state, params_check, save_state
from fedbbpt_jax.flower.server_app import run_deployment, setup_files
from fedbbpt_jax.flower.settings import config_to_json, node_settings, run_settings
from fedbbpt_jax.flower.strategy import FedBBPTStrategy
from fedbbpt_jax.serve.process import LOOPBACK, free_port
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.inprocess_grid import InProcessGrid, client_reply
from tests.helpers.tiny_models import tiny

NODE_IDS = {0: 1000, 1: 1001, 2: 1002}  # as InProcessGrid numbers them
RAISED = ErrorCode.CLIENT_APP_RAISED_EXCEPTION



def smoke(rounds=2):
  c = tiny(get_config("smoke"))
  c.baselines.local_only = False
  c.baselines.zero_shot = False
  c.train.rounds = rounds
  return c


def node_context(pid, node_dir, **extra):
  return Context(run_id=1, node_id=NODE_IDS[pid], state=RecordDict(), run_config={},
                 node_config={"partition-id": pid, "workdir": str(node_dir), **extra})


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


# -- (a) set-up file names --------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/b", "..", ".", ""])
def test_set_up_files_whose_names_are_paths_are_refused_and_nothing_is_written(name, tmp_path):
  directory = tmp_path / "node" / "run-1"
  run = ConfigRecord({M.FILE_PREFIX + "label_map.npz": b"fine", M.FILE_PREFIX + name: b"evil"})
  with pytest.raises(ValueError) as e:
    write_setup_files(str(directory), run)
  assert str(e.value) == ("the server sent set-up files whose names are not plain file names: "
                          f"[{name!r}]; a node writes set-up files only inside its run "
                          f"directory {directory}; nothing was written")
  assert os.listdir(tmp_path) == []  # not even the plain-named file


def test_a_train_message_with_a_path_like_file_gets_an_error_reply_naming_it(tmp_path):
  """Through the ClientApp: the node answers the error reply a SuperNode sends for a
  raising ClientApp, naming the file; nothing is written (the server's side of an error
  reply: the next test)."""
  run = ConfigRecord({M.CONFIG_JSON: config_to_json(smoke()), M.ROUND: 0, M.REFRESH_ROUND: -1,
                      M.FILE_PREFIX + "label_map.npz": b"fine",
                      M.FILE_PREFIX + "../escaped.npz": b"evil"})
  message = Message(RecordDict({M.RUN: run}), dst_node_id=NODE_IDS[1], message_type=M.TRAIN,
                    group_id="1")
  message.metadata.__dict__["_message_id"] = message.object_id  # as Grid.push_messages
  reply = client_reply(message, node_context(1, tmp_path / "node1"))
  node_dir = run_directory(node_settings({"partition-id": 1, "workdir": str(tmp_path / "node1")}),
                           config_to_json(smoke()))
  assert reply.has_error() and reply.error.code == RAISED
  assert reply.error.reason == (
      "<class 'ValueError'>:<'the server sent set-up files whose names are not plain file "
      f"names: ['../escaped.npz']; a node writes set-up files only inside its run directory "
      f"{node_dir}; nothing was written'>")
  assert reply.metadata.reply_to_message_id == message.metadata.message_id
  assert os.listdir(tmp_path) == []


# -- (b) a failing node: error reply, member dropped, round goes on ----------------------

def test_a_node_whose_provider_is_down_is_recorded_dropped_and_the_round_goes_on(tmp_path):
  """Node 1 reaches no black box (its 'blackbox-url' is a closed port): its ClientApp
  raises, the error reply comes back, and the server records the member as dropped; the
  other two train. The round equals one in which node 1 is down."""
  dead = f"http://{LOOPBACK}:{free_port()}"
  failing = {1: {"blackbox-url": dead, "overrides": "blackbox.max_attempts=1"}}
  logs = {"failing": [], "silent": []}
  for case, grid in [("failing", InProcessGrid(str(tmp_path / "nodes"), range(3),
                                               node_configs=failing)),
                     ("silent", InProcessGrid(str(tmp_path / "nodes"), range(3), down=(1,)))]:
    settings = run_settings({"workdir": str(tmp_path / case), "min-nodes": 2,
                             "discover-timeout": 1.0})
    run_deployment(grid, smoke(rounds=1), settings, log=logs[case].append)
  reason = (f"<class 'fedbbpt_jax.blackbox.remote.RemoteBlackBoxError'>:<'remote black box "
            f"{dead}/v1/info failed: no HTTP response: ConnectError: [Errno 111] Connection "
            "refused'>")
  member_notes = lambda log: [line for line in log if line.startswith("round ")
                              and "partition" in line]
  assert member_notes(logs["failing"]) == [
      f"round 1: partition 1 (node {NODE_IDS[1]}): error {RAISED}: {reason}"]
  assert member_notes(logs["silent"]) == [  # down since discovery: never sent anything
      "round 1: partition 1: no node connected"]
  failing, silent = rows(tmp_path / "failing"), rows(tmp_path / "silent")
  assert np.isfinite(failing[0]["train_loss"])  # the two others trained
  assert [(r["survivors"], r["nodes_missing"], r["client_activations"]) for r in failing] == [
      (2, 1, 2)]
  for a, b in zip(failing, silent, strict=True):
    for key in ("train_loss", "test_accuracy", "bb_examples", "cohort", "upload_bytes"):
      assert a[key] == b[key], key
  state_f, _ = RoundCheckpointer(str(tmp_path / "failing")).restore(1)
  state_s, _ = RoundCheckpointer(str(tmp_path / "silent")).restore(1)
  for x, y in zip(jax.tree.leaves(state_s), jax.tree.leaves(state_f), strict=True):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))


# -- (c) seed download: a replay that misses the server's checksum -----------------------

def seeds_rounds(exp, server_dir, node_dir, rounds, between=lambda r, strategy: None, silent=()):
  """``rounds`` rounds of ``download='seeds'`` with every client every round, the nodes
  answering through ``client_reply``; ``between(r, strategy)`` runs after round ``r``;
  ``silent`` holds the ``(round, partition)`` whose reply is lost. Returns the strategy,
  its notes and what each round sent each node (``'state'`` or ``'history'``)."""
  notes, sent = [], []
  strategy = FedBBPTStrategy(exp, exp.algorithm.init(exp.init_params), NODE_IDS,
                             setup_files(exp, server_dir), log=notes.append, download="seeds")
  for r in range(1, rounds + 1):
    replies, kinds = [], {}
    for message in strategy.configure_train(r, None, None, grid=None):
      message.metadata.__dict__["_message_id"] = message.object_id
      pid = {n: p for p, n in NODE_IDS.items()}[message.metadata.dst_node_id]
      kinds[pid] = M.STATE if M.STATE in message.content else M.HISTORY
      if (r, pid) not in silent:
        replies.append(client_reply(message, node_context(pid, node_dir / f"node{pid}")))
    strategy.aggregate_train(r, replies)
    sent.append(kinds)
    between(r, strategy)
  return strategy, notes, sent


def test_a_seed_replay_checksum_mismatch_drops_the_member_discards_its_state_and_resyncs(
    tmp_path):
  """Node 1's kept state is altered after round 1 (as a damaged disk would): in round 2
  its replay misses the server's checksum, so it answers an error reply and deletes the
  state it kept; the server counts it dropped and sends it the whole state in round 3.
  The run ends bit for bit where one ends in which node 1's round-2 reply is lost."""
  config = smoke(rounds=3)
  config.client.upload = "seeds"
  (tmp_path / "server").mkdir()
  server_dir = str(tmp_path / "server")
  exp = build_experiment(config, workdir=server_dir)
  like = exp.algorithm.init(exp.init_params)
  node1 = node_settings({"partition-id": 1, "workdir": str(tmp_path / "nodes" / "node1")})
  kept_dir = run_directory(node1, config_to_json(exp.config))
  kept_path = os.path.join(kept_dir, STATE_FILE)

  reference, ref_notes, _ = seeds_rounds(exp, server_dir, tmp_path / "nodes", 3,
                                         silent={(2, 1)})
  assert ref_notes == ["round 2: partition 1: no reply in time"]

  seen = {}

  def damage_then_watch(r, strategy):
    if r == 1:  # the state of round 0 that node 1 kept: one parameter moved
      seen["server_check_1"] = params_check(strategy.state.params)  # sent with round 2
      state = load_state(kept_dir, like)
      leaves, treedef = jax.tree.flatten(state.params)
      leaves[0] = np.array(leaves[0])
      leaves[0].flat[0] += 0.01
      save_state(kept_dir, state.replace(params=jax.tree.unflatten(treedef, leaves)))
    if r == 2:
      seen["kept_after_2"] = os.path.exists(kept_path)
      seen["server_state_2"] = strategy.state

  strategy, notes, sent = seeds_rounds(exp, server_dir, tmp_path / "nodes", 3,
                                       between=damage_then_watch)
  assert len(notes) == 1 and notes[0].startswith(
      f"round 2: partition 1 (node {NODE_IDS[1]}): error {RAISED}: <class 'RuntimeError'>:<'the "
      "replayed rounds 1..1 give parameters with checksum "), notes
  assert notes[0].endswith(f", the server's is {seen['server_check_1']!r}; deleted the kept "
                           f"state {kept_path} (the server sends the whole state next time)'>")
  assert sent == [{0: M.STATE, 1: M.STATE, 2: M.STATE},
                  {0: M.HISTORY, 1: M.HISTORY, 2: M.HISTORY},
                  {0: M.HISTORY, 1: M.STATE, 2: M.HISTORY}]
  assert seen["kept_after_2"] is False  # nothing of the bad replay (or its start) is kept
  # Round 3 re-synced node 1 with the server's state of round 2, exactly.
  kept = load_state(kept_dir, like)
  for x, y in zip(jax.tree.leaves(seen["server_state_2"]), jax.tree.leaves(kept), strict=True):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
  for x, y in zip(jax.tree.leaves(reference.state), jax.tree.leaves(strategy.state), strict=True):
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
  assert int(strategy.state.round) == 3
