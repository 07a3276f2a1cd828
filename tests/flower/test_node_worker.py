"""A node's long-lived worker (``fedbbpt_jax/flower/worker*.py``), driven as a ClientApp
process drives it: real worker processes, real train messages of the smoke experiment
(tiny black box), replies compared bit for bit with the ClientApp training in this
process (``worker=false``).

The worker is started once and reused (one experiment built, one pid); a worker killed
mid-request gives an error naming its log and is replaced at the next round; a failure
inside the worker reaches the server as the in-process one does; the worker refuses a
client without its secret and exits after its idle timeout or when its SuperNode is
gone; ClientApps asking at once start one worker; the loopback teardown's
``stop_workers`` leaves no process.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from configs.fmnist_effnet import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower import node as in_process
from fedbbpt_jax.flower import worker_client
from fedbbpt_jax.flower import worker_protocol as W
from fedbbpt_jax.flower.server_app import setup_files
from fedbbpt_jax.flower.settings import node_settings
from fedbbpt_jax.flower.strategy import FedBBPTStrategy
from fedbbpt_jax.serve.process import LOOPBACK, free_port
from fedbbpt_jax.train.build import build_experiment
from tests.helpers.inprocess_grid import client_reply
from tests.helpers.tiny_models import tiny
from tests.helpers.tiny_service import PLUGINS

PARTITION, NODE_ID = 0, 1000


def smoke():
  c = tiny(get_config("smoke"))
  c.baselines.local_only = False
  c.baselines.zero_shot = False
  return c


@pytest.fixture(scope="module")
def identity():
  """What a Flower process sets before messages are made (run, node and task ids)."""
  with pytest.MonkeyPatch.context() as patch:
    for name in ("_run_id", "_node_id", "_task_id"):
      patch.setattr(TaskIdentity, name, 1)
    yield


@pytest.fixture(scope="module")
def setup(identity, tmp_path_factory):
  """A train message per round (the server's real round-1 message, its round field
  changed), the in-process replies to them, and the node config of a worker node."""
  server_dir = str(tmp_path_factory.mktemp("server"))
  exp = build_experiment(smoke(), workdir=server_dir)
  strategy = FedBBPTStrategy(exp, exp.algorithm.init(exp.init_params), {PARTITION: NODE_ID},
                             setup_files(exp, server_dir), log=lambda _: None)
  (first,) = strategy.configure_train(1, None, None, grid=None)

  def message(round_idx, **run_extra):
    run = ConfigRecord({**dict(first.content[M.RUN]), M.ROUND: round_idx, **run_extra})
    m = Message(RecordDict({M.GLOBAL: first.content[M.GLOBAL], M.RUN: run}),
                dst_node_id=NODE_ID, message_type=M.TRAIN, group_id=str(round_idx + 1))
    m.metadata.__dict__["_message_id"] = m.object_id  # as Grid.push_messages
    return m

  reference_dir = str(tmp_path_factory.mktemp("reference"))
  reference = {r: in_process.train_reply(message(r), {"partition-id": PARTITION,
                                                      "workdir": reference_dir})
               for r in range(3)}
  workdir = str(tmp_path_factory.mktemp("node"))
  node_config = {"partition-id": PARTITION, "workdir": workdir, "imports": PLUGINS,
                 "worker": True}
  yield message, reference, node_config
  stopped = worker_client.stop_workers(workdir)  # what LoopbackFederation.stop runs
  assert all(W.process_start(pid) is None for pid in stopped)
  assert worker_client.worker_pids(workdir) == []


def worker_directory(node_config):
  return W.worker_dir(node_config["workdir"], node_config["partition-id"])


def status(node_config):
  return worker_client.request(node_settings(node_config), {"op": "status"})[0]


def train(sent, node_config, want):
  """``sent``'s reply through ``worker_client.train_reply``, checked equal to ``want`` (the
  upload bit for bit, the report but its timing) and addressed to ``sent``."""
  got = worker_client.train_reply(sent, node_config)
  assert got.metadata.reply_to_message_id == sent.metadata.message_id
  assert set(got.content.keys()) == {M.UPLOAD, M.REPORT}
  upload, expected = got.content[M.UPLOAD], want.content[M.UPLOAD]
  assert list(upload.keys()) == list(expected.keys())
  for name in expected.keys():
    np.testing.assert_array_equal(upload[name].numpy(), expected[name].numpy(), err_msg=name)
  report, expected = dict(got.content[M.REPORT]), dict(want.content[M.REPORT])
  report.pop("train-seconds"), expected.pop("train-seconds")
  assert report == expected


def test_a_worker_killed_mid_request_names_its_log_and_the_next_round_starts_a_new_one(setup):
  message, reference, node_config = setup
  old = status(node_config)["pid"]  # (starts a worker: no JAX imported yet)
  outcome = {}

  def request():
    try:
      worker_client.train_reply(message(0), node_config)
    except Exception as e:  # pylint: disable=broad-except
      outcome["error"] = e

  thread = threading.Thread(target=request)
  thread.start()
  deadline = time.monotonic() + 60
  while status(node_config)["training"] == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
  os.kill(old, signal.SIGKILL)  # while it trains (importing JAX, building)
  thread.join(60)
  log = os.path.join(worker_directory(node_config), W.LOG)
  assert type(outcome["error"]) is W.WorkerError
  assert str(outcome["error"]) == (f"the node's worker (pid {old}) ended before it replied; "
                                   f"its log: {log}")
  train(message(0), node_config, reference[0])
  new = status(node_config)
  assert new["pid"] != old and (new["trained"], new["builds"]) == (1, 1)
  assert W.read_info(worker_directory(node_config))["pid"] == new["pid"]


def test_rounds_go_through_one_worker_that_builds_the_experiment_once(setup):
  message, reference, node_config = setup
  before = status(node_config)
  for r in (1, 2):
    train(message(r), node_config, reference[r])
  pid = W.read_info(worker_directory(node_config))["pid"]
  assert status(node_config) == {"ok": True, "pid": pid, "trained": before["trained"] + 2,
                                 "training": 0, "builds": 1}
  assert before["pid"] == pid
  with open(os.path.join(worker_directory(node_config), W.LOG)) as f:
    lines = [line.split(": ", 1)[1] for line in f if f"worker {pid}: trained round" in line]
  assert [line.split(" in ")[0] for line in lines[-2:]] == ["trained round 1", "trained round 2"]
  assert sum(line.endswith("(built the experiment)\n") for line in lines) == 1
  assert os.stat(os.path.join(worker_directory(node_config), W.INFO)).st_mode & 0o777 == 0o600


def test_an_evaluate_message_goes_through_the_same_worker_and_equals_in_process(setup):
  """Federated evaluation (``op='evaluate'``) reuses the worker's built experiment: the
  same pid, no new build, the sums the ClientApp process computes itself."""
  message, _, node_config = setup
  before = status(node_config)
  sent = message(1)
  sent.metadata.__dict__["_message_type"] = M.EVALUATE
  got = worker_client.evaluate_reply(sent, node_config)
  from fedbbpt_jax.flower.node_evaluation import evaluate_reply  # pylint: disable=import-outside-toplevel
  want = evaluate_reply(sent, {k: v for k, v in node_config.items() if k != "worker"})
  assert got.metadata.reply_to_message_id == sent.metadata.message_id
  sums, expected = dict(got.content[M.TEST_SUMS]), dict(want.content[M.TEST_SUMS])
  sums.pop("eval-seconds"), expected.pop("eval-seconds")
  assert sums == expected and sums["num-examples"] > 0
  after = status(node_config)
  assert (after["pid"], after["builds"], after["trained"]) == (before["pid"], 1,
                                                              before["trained"])
  with open(os.path.join(worker_directory(node_config), W.LOG)) as f:
    assert any(f"worker {after['pid']}: evaluated after round 1" in line for line in f)


@pytest.mark.parametrize("failure", ["path-like set-up file", "node override", "provider down"])
def test_a_failure_in_the_worker_reaches_the_server_as_in_process(setup, failure, tmp_path):
  """Flower's error reply (``client_reply``: the class and the text) is the same whether
  the request raised in the worker or in the ClientApp process."""
  message, _, node_config = setup
  if failure == "path-like set-up file":
    bad, extra = message(0, **{M.FILE_PREFIX + "../escaped.npz": b"evil"}), {}
  elif failure == "node override":
    bad, extra = message(0), {"overrides": "train.rounds=3"}
  else:  # (the node's black box is a closed port)
    bad, extra = message(0), {"blackbox-url": f"http://{LOOPBACK}:{free_port()}",
                              "overrides": "blackbox.max_attempts=1"}
  reasons = []
  for worker in (True, False):
    config = {**node_config, **extra, "worker": worker}
    reply = client_reply(bad, Context(run_id=1, node_id=NODE_ID, node_config=config,
                                      state=RecordDict(), run_config={}))
    assert reply.has_error()
    reasons.append(reply.error.reason)
  assert reasons[0] == reasons[1]
  if failure == "node override":
    assert reasons[0] == (f"<class '{ConfigError.__module__}.ConfigError'>:<'node config of "
                          "partition 0: 'train.rounds' cannot be set here; allowed: "
                          "['data.source_dir', 'data.tfds_dir', 'blackbox.url', "
                          "'blackbox.api_key_env', 'blackbox.max_attempts', "
                          "'blackbox.backoff_seconds', 'blackbox.timeout_seconds', "
                          "'blackbox.max_concurrency', 'blackbox.chunk_size', 'llm.url', "
                          "'llm.api_key_env', 'llm.max_concurrency', 'llm.model_path', "
                          "'generator.model_path']'>")
  elif failure == "provider down":
    assert reasons[0] == (
        "<class 'fedbbpt_jax.blackbox.remote.RemoteBlackBoxError'>:<'remote black box "
        f"{extra['blackbox-url']}/v1/info failed: no HTTP response: ConnectError: [Errno 111] "
        "Connection refused'>")
  else:
    assert reasons[0].startswith("<class 'ValueError'>:<'the server sent set-up files whose "
                                 "names are not plain file names: ['../escaped.npz']")


def test_the_worker_refuses_a_client_without_its_secret(tmp_path):
  """A worker that only answered status requests (no JAX imported): cheap to start."""
  node_config = {"partition-id": 7, "workdir": str(tmp_path), "worker": True}
  directory = worker_directory(node_config)
  pid = status(node_config)["pid"]
  info = W.read_info(directory)
  assert os.stat(directory).st_mode & 0o777 == 0o700
  assert os.stat(os.path.join(directory, W.INFO)).st_mode & 0o777 == 0o600
  with pytest.raises(W.WorkerAuthError) as e:
    worker_client.open_connection({**info, "secret": W.new_secret()})
  assert str(e.value) == ("the worker refused the connection: wrong secret (the connection "
                          "closed 0 of 32 bytes into a read)")
  assert status(node_config)["pid"] == pid  # it goes on serving
  assert worker_client.stop_workers(str(tmp_path)) == [pid]
  with open(os.path.join(directory, W.LOG)) as f:
    lines = [line.split(f"worker {pid}: ", 1)[1].rstrip("\n") for line in f]
  assert lines == [f"listening on 127.0.0.1:{info['port']}; exits after 600 s idle",
                   "refused a connection: it does not hold the secret", "exiting: SIGTERM"]


def test_the_worker_exits_when_idle(tmp_path):
  node_config = {"partition-id": 7, "workdir": str(tmp_path), "worker": True,
                 "worker-idle-seconds": 1.0}
  directory = worker_directory(node_config)
  pid = status(node_config)["pid"]
  start = W.read_info(directory)["start"]
  deadline = time.monotonic() + 30
  while W.running(pid, start) and time.monotonic() < deadline:
    time.sleep(0.05)
  assert not W.running(pid, start)
  assert W.read_info(directory) is None  # it removed its worker.json
  with open(os.path.join(directory, W.LOG)) as f:
    lines = [line.split(f"worker {pid}: ", 1)[1].rstrip("\n") for line in f]
  assert len(lines) == 2 and lines[0].endswith("; exits after 1 s idle")
  assert lines[1].startswith("exiting: no request for ") and lines[1].endswith(" s")
  assert float(lines[1].split()[-2]) >= 1


def test_worker_false_and_auto_train_in_this_process(setup, tmp_path):
  message, reference, node_config = setup
  for worker in (False, "auto"):  # "auto": a worker only in a flwr-clientapp process
    config = {**node_config, "workdir": str(tmp_path / str(worker)), "worker": worker}
    train(message(0), config, reference[0])
    assert worker_client.worker_dirs(config["workdir"]) == []
  with pytest.raises(ConfigError) as e:
    node_settings({"partition-id": 0, "worker": "sometimes"})
  assert str(e.value) == "node config 'worker'='sometimes' must be true, false or \"auto\""


def test_the_reply_deadline_is_the_messages_own(identity):
  m = Message(RecordDict(), dst_node_id=NODE_ID, message_type=M.TRAIN, group_id="1", ttl=900)
  assert 899 < worker_client.reply_seconds(m) <= 900
  m = Message(RecordDict(), dst_node_id=NODE_ID, message_type=M.TRAIN, group_id="1", ttl=5)
  assert worker_client.reply_seconds(m) == worker_client.MIN_REPLY_SECONDS


def test_an_exception_class_this_process_has_not_loaded_prints_as_in_the_worker():
  ex = W.rebuild_exception({"module": "some_plugin.errors", "qualname": "Provider.Down",
                            "message": "no answer"})
  assert (str(type(ex)), str(ex)) == ("<class 'some_plugin.errors.Provider.Down'>", "no answer")
  ex = W.rebuild_exception(W.describe_exception(ConfigError("bad field")))
  assert type(ex) is ConfigError and str(ex) == "bad field"


def test_clientapps_that_ask_at_once_start_one_worker(tmp_path):
  node_config = {"partition-id": 3, "workdir": str(tmp_path), "worker": True,
                 "worker-idle-seconds": 60.0}
  pids = []
  threads = [threading.Thread(target=lambda: pids.append(status(node_config)["pid"]))
             for _ in range(3)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(60)
  assert len(pids) == 3 and len(set(pids)) == 1
  with open(os.path.join(worker_directory(node_config), W.LOG)) as f:
    assert sum("listening on" in line for line in f) == 1
  assert worker_client.stop_workers(str(tmp_path)) == pids[:1]
  assert W.read_info(worker_directory(node_config)) is None


def test_the_worker_exits_when_the_supernode_it_serves_is_gone(tmp_path):
  """The worker as ``worker_client.start_worker`` starts it under a SuperNode (here a
  stand-in process whose exit it watches)."""
  supernode = subprocess.Popen(["sleep", "60"])
  start = W.process_start(supernode.pid)
  with open(tmp_path / W.LOG, "wb") as log:
    worker = subprocess.Popen([sys.executable, "-m", "fedbbpt_jax.flower.worker", "--dir",
                               str(tmp_path), "--idle-seconds", "60", "--watch-pid",
                               str(supernode.pid), "--watch-start", str(start)],
                              stdout=log, stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 30
    while W.read_info(str(tmp_path)) is None and time.monotonic() < deadline:
      time.sleep(0.05)
    assert W.read_info(str(tmp_path))["watch-pid"] == supernode.pid
    supernode.kill()
    supernode.wait()
    assert worker.wait(timeout=10) == 0
  finally:
    supernode.kill()
    worker.kill()
  lines = (tmp_path / W.LOG).read_text().splitlines()
  assert lines[-1].endswith(f"worker {worker.pid}: exiting: the SuperNode it served "
                            f"(pid {supernode.pid}) is gone")
  assert W.read_info(str(tmp_path)) is None
