"""RemoteBlackBox: one host call per step, request splitting, retries, errors, accounting,
a service restarted mid-run, and the smoke experiment remote == local (with a budget that
runs out mid-round and a resume).

Retry logic is tested against ``httpx.MockTransport`` (no network); everything else
against the real service on loopback (one process for the module, max batch 16; every
computed request holds 9-16 examples, so the service compiles only the bucket 16). The
service serves the tiny test classifier (``tests/helpers/tiny_service.py``): these tests
check the client's plumbing, which is the same for every served model.
"""

import json
import math
import os
import threading
import time

import httpx
import jax
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.blackbox import (QueryBudgetExceeded, RemoteBlackBox, RemoteBlackBoxError,
                                  RemoteBudgetExceeded, RetryPolicy)
from fedbbpt_jax.blackbox.remote import split_batches
from fedbbpt_jax.blackbox.wire import decode_array, encode_array
from fedbbpt_jax.blackbox.zoo import make_image_classifier
from fedbbpt_jax.serve.process import free_port
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.tiny_models import IMAGE, register, tiny
from tests.helpers.tiny_service import tiny_service_process

SIZE, MAX_BATCH = 32, 16
FAST = RetryPolicy(max_attempts=3, backoff_seconds=0.01, timeout_seconds=30)
# Smoke experiment trimmed so that every black-box call is a multiple of 16 examples:
# label mapping 3 x 10, a round 3 clients x 3 steps x 4 candidates x 8 = 288,
# an evaluation (zero-shot, then after every round) 2 x 96 = 192.
MAPPING, ROUND, EVAL = 30, 288, 192
KEYS = {"meter-key": None, "tiny-key": 20, "restart-key": None, "run-key": None,
        "kill-key": None, "short-key": MAPPING + EVAL + ROUND + EVAL + 50}


def smoke_config(url=""):
  c = tiny(get_config("smoke"))
  c.train.rounds = 2
  c.data.test_examples = 192
  c.train.eval_batch_size = 96
  c.baselines.local_only = False
  c.blackbox.url = url
  c.blackbox.api_key_env = "FEDBBPT_TEST_API_KEY"
  c.blackbox.backoff_seconds = 0.05
  return c


@pytest.fixture(scope="module")
def service(tmp_path_factory):
  keys_path = tmp_path_factory.mktemp("keys") / "keys.json"
  keys_path.write_text(json.dumps(KEYS))
  cache = jax.config.jax_compilation_cache_dir or ""
  register()
  with tiny_service_process(IMAGE, input_size=SIZE, max_batch=MAX_BATCH,
                            keys_path=str(keys_path),
                            env={"JAX_COMPILATION_CACHE_DIR": cache,
                                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}) as s:
    yield s


@pytest.fixture(scope="module")
def local_outputs():
  """The local surrogate, run in chunks padded to the service's bucket 16."""
  register()
  forward = jax.jit(make_image_classifier(IMAGE, SIZE))

  def outputs(x):
    x = x.reshape((-1, SIZE, SIZE, 3))
    out = []
    for rows in split_batches(len(x), MAX_BATCH):
      padded = np.zeros((MAX_BATCH, SIZE, SIZE, 3), np.float32)
      padded[:rows.stop - rows.start] = x[rows]
      out.append(np.asarray(forward(padded))[:rows.stop - rows.start])
    return np.concatenate(out)

  return outputs


def images(n, seed=0):
  return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype(np.float32)


# -- retry logic against a mock transport ------------------------------------------------

INFO = {"model": "mock", "input_shape": [2, 2, 3], "output_size": 5, "max_batch": 4,
        "wire_dtypes": ["float32", "uint8"]}


def mock_blackbox(statuses, attempts=3):
  """A RemoteBlackBox whose /v1/predict answers the given statuses in turn (last repeats)."""
  seen = []

  def handler(request):
    if request.url.path == "/v1/info":
      return httpx.Response(200, json=INFO)
    status, error = statuses[min(len(seen), len(statuses) - 1)]
    seen.append(status)
    if status == 200:
      n = len(decode_array(request.content))
      return httpx.Response(200, content=encode_array(np.ones((n, 5), np.float32)))
    return httpx.Response(status, json={"error": error, "message": f"mock says {status}"})

  bb = RemoteBlackBox("http://mock", "key", retry=RetryPolicy(
      max_attempts=attempts, backoff_seconds=0.001), transport=httpx.MockTransport(handler))
  return bb, seen


def test_5xx_and_429_are_retried_until_success():
  bb, seen = mock_blackbox([(503, "overloaded"), (429, "rate_limited"), (500, "x"), (200, "")],
                           attempts=4)
  out = bb.predict(np.zeros((3, 2, 2, 3), np.float32))
  np.testing.assert_array_equal(out, np.ones((3, 5)))
  assert seen == [503, 429, 500, 200]
  assert bb.meter.as_dict() == {"host_calls": 1, "http_requests": 4, "http_retries": 3,
                                "examples_sent": 3}


def test_retries_run_out_with_an_error_naming_url_status_and_message():
  bb, seen = mock_blackbox([(503, "overloaded")], attempts=3)
  with pytest.raises(RemoteBlackBoxError) as e:
    bb.predict(np.zeros((2, 2, 2, 3), np.float32))
  assert str(e.value) == ("remote black box http://mock/v1/predict failed after 3 attempts: "
                          "HTTP 503: mock says 503")
  assert (e.value.status, len(seen), bb.meter.examples_sent) == (503, 3, 0)


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_client_errors_are_not_retried(status):
  bb, seen = mock_blackbox([(status, "bad")], attempts=5)
  with pytest.raises(RemoteBlackBoxError, match=f"HTTP {status}: mock says {status}") as e:
    bb.predict(np.zeros((2, 2, 2, 3), np.float32))
  assert not isinstance(e.value, QueryBudgetExceeded)
  assert seen == [status]


@pytest.mark.parametrize("status", [402, 429])
def test_a_spent_budget_raises_query_budget_exceeded_without_retrying(status):
  bb, seen = mock_blackbox([(status, "budget_exceeded")], attempts=5)
  with pytest.raises(RemoteBudgetExceeded) as e:
    bb.predict(np.zeros((2, 2, 2, 3), np.float32))
  assert isinstance(e.value, QueryBudgetExceeded) and seen == [status]


def test_a_non_finite_answer_is_not_retried():
  # The service refuses to bill NaN/inf outputs (500 non_finite_output); the same inputs
  # would give the same outputs, so a retry only costs time.
  bb, seen = mock_blackbox([(500, "non_finite_output")], attempts=5)
  with pytest.raises(RemoteBlackBoxError, match="HTTP 500: mock says 500") as e:
    bb.predict(np.zeros((2, 2, 2, 3), np.float32))
  assert seen == [500] and e.value.status == 500


def shaped_blackbox(answer):
  """A RemoteBlackBox whose service answers ``answer(n)`` for a request of n rows."""

  def handler(request):
    if request.url.path == "/v1/info":
      return httpx.Response(200, json=INFO)
    return httpx.Response(200, content=encode_array(answer(len(decode_array(request.content)))))

  return RemoteBlackBox("http://mock", transport=httpx.MockTransport(handler),
                        retry=RetryPolicy(max_attempts=3, backoff_seconds=0.001))


@pytest.mark.parametrize("answer,received", [
    (lambda n: np.ones((n - 1, 5), np.float32), "(2, 5)"),       # a row missing
    (lambda n: np.ones((n, 7), np.float32), "(3, 7)"),           # other number of classes
    (lambda n: np.ones((n, 5, 1), np.float32), "(3, 5, 1)"),     # another rank
    (lambda n: np.full((n, 5), "x"), "(3, 5) of dtype <U1"),     # not numbers
])
def test_a_wrongly_shaped_answer_is_a_clear_error_eagerly_and_inside_jit(answer, received):
  message = (f"remote black box http://mock/v1/predict failed: HTTP 200: the service answered "
             f"outputs of shape {received} for 3 inputs; expected (3, 5) float32 (3 inputs x "
             f"output_size 5 from /v1/info)")
  x = np.zeros((3, 2, 2, 3), np.float32)
  with pytest.raises(RemoteBlackBoxError) as e:
    shaped_blackbox(answer).predict(x)
  assert str(e.value) == message
  bb = shaped_blackbox(answer)
  out = np.asarray(jax.jit(lambda v: bb(v) * 2.0)(x))   # no crash inside XLA: NaN, error kept
  assert out.shape == (3, 5) and np.isnan(out).all()
  with pytest.raises(RemoteBlackBoxError) as e:
    bb.raise_pending_error()
  assert str(e.value) == message
  assert bb.meter.http_requests == 1                    # a wrong answer is not retried


def test_requests_are_split_by_max_batch_and_reassembled_in_order():
  sizes = []

  def handler(request):
    if request.url.path == "/v1/info":
      return httpx.Response(200, json=INFO)
    x = decode_array(request.content)
    sizes.append(len(x))
    return httpx.Response(200, content=encode_array(
        np.repeat(x[:, :1, :1, 0].reshape(-1, 1), 5, axis=1)))

  bb = RemoteBlackBox("http://mock", transport=httpx.MockTransport(handler), max_concurrency=3)
  x = np.arange(2 * 5, dtype=np.float32).reshape(2, 5, 1, 1, 1) * np.ones((1, 1, 2, 2, 3))
  out = bb.predict(x)
  assert out.shape == (2, 5, 5) and sorted(sizes) == [2, 4, 4]
  np.testing.assert_array_equal(out[..., 0], x[:, :, 0, 0, 0])


def test_an_unreachable_service_fails_with_a_clear_error():
  url = f"http://127.0.0.1:{free_port()}"
  with pytest.raises(RemoteBlackBoxError, match=f"{url}/v1/info failed after 2 attempts: "
                     "no HTTP response: ConnectError"):
    RemoteBlackBox(url, retry=RetryPolicy(max_attempts=2, backoff_seconds=0.01))


# -- against the real service ----------------------------------------------------------

def test_a_step_is_one_host_call_of_ceil_cdb_over_max_batch_requests(service, local_outputs):
  bb = RemoteBlackBox(service.url, "meter-key", retry=FAST)
  assert (bb.name, bb.input_shape, bb.output_size, bb.max_batch) == (
      IMAGE, (SIZE, SIZE, 3), 1000, MAX_BATCH)
  clients, candidates, batch = 3, 4, 4
  x = images(clients * candidates * batch).reshape(clients, candidates, batch, SIZE, SIZE, 3)
  step = jax.jit(jax.vmap(jax.vmap(bb)))      # clients x candidates, each a batch of 4
  before = bb.usage()
  out = np.asarray(step(x))
  bb.raise_pending_error()
  after = bb.usage()
  expected_requests = math.ceil(clients * candidates * batch / MAX_BATCH)
  assert expected_requests == 3 and clients * candidates == 12
  assert bb.meter.as_dict() == {"host_calls": 1, "http_requests": expected_requests,
                                "http_retries": 0, "examples_sent": 48}
  assert after["requests"] - before["requests"] == expected_requests
  assert after["used"] - before["used"] == 48 == bb.meter.examples_sent
  assert out.shape == (clients, candidates, batch, 1000)
  np.testing.assert_allclose(out.reshape(-1, 1000), local_outputs(x), rtol=1e-5, atol=1e-5)


def test_uint8_wire_sends_quantised_pixels(service, local_outputs):
  bb = RemoteBlackBox(service.url, "meter-key", wire_dtype="uint8", retry=FAST)
  x = images(16, seed=3)
  quantised = np.rint(x * 255).astype(np.uint8).astype(np.float32) / np.float32(255)
  np.testing.assert_allclose(np.asarray(bb(x)), local_outputs(quantised), rtol=1e-5, atol=1e-5)
  assert np.abs(local_outputs(quantised) - local_outputs(x)).max() > 1e-4


def test_a_spent_budget_inside_jit_is_recorded_and_raised_on_the_host(service):
  bb = RemoteBlackBox(service.url, "tiny-key", retry=FAST)
  x = images(16, seed=4)
  assert np.isfinite(np.asarray(bb(x))).all()          # eager: 16 of 20 used
  with pytest.raises(RemoteBudgetExceeded, match="used 16 of 20 examples; this request of 16"):
    bb(x)                                              # eager: raises at once
  out = np.asarray(jax.jit(bb)(x))                     # jitted: NaN, error kept
  assert np.isnan(out).all() and isinstance(bb.pending_error, RemoteBudgetExceeded)
  sent = bb.meter.http_requests
  assert np.isnan(np.asarray(jax.jit(lambda v: bb(v) + 1)(x))).all()
  assert bb.meter.http_requests == sent                # nothing sent while an error is pending
  with pytest.raises(QueryBudgetExceeded, match="HTTP 402: query budget spent"):
    bb.raise_pending_error()
  bb.raise_pending_error()                             # cleared
  usage = bb.usage()
  assert (usage["used"], usage["remaining"], usage["refused_requests"]) == (16, 4, 2)
  assert bb.meter.examples_sent == usage["used"]


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
  """The metrics rows of the local-surrogate smoke run, which the remote runs must equal.

  Run in the test's own thread: a run in a background thread (it overlapped the service's
  start) created loggers while pytest iterated over them entering a test ("dictionary
  changed size during iteration" in pytest's catching_logs).
  """
  workdir = str(tmp_path_factory.mktemp("local"))
  run(smoke_config(), workdir, log=lambda s: None)
  return read_rows(workdir)


def read_rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def assert_rows_match(remote, local):
  assert len(remote) == len(local)
  for r, loc in zip(remote, local):
    assert r["round"] == loc["round"] and r["bb_examples"] == loc["bb_examples"]
    assert r["test_accuracy"] == loc["test_accuracy"], (r, loc)
    np.testing.assert_allclose(r["train_loss"], loc["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(r["test_loss"], loc["test_loss"], rtol=1e-4)


def test_smoke_run_against_the_service_stops_on_its_budget_and_resumes_equal_to_local(
    service, local_rows, tmp_path, monkeypatch):
  workdir = str(tmp_path / "remote")
  config = smoke_config(service.url)
  monkeypatch.setenv("FEDBBPT_TEST_API_KEY", "short-key")
  # Budget: label mapping + zero-shot + round 1 + its evaluation + 50: round 2 fails mid-round.
  with pytest.raises(QueryBudgetExceeded, match="query budget spent") as e:
    run(config, workdir, log=lambda s: None)
  assert isinstance(e.value, RemoteBudgetExceeded) and e.value.status == 402
  assert [r["round"] for r in read_rows(workdir)] == [1]
  assert RoundCheckpointer(workdir).latest_round() == 1
  assert_rows_match(read_rows(workdir), local_rows[:1])
  short = httpx.get(service.url + "/v1/usage", headers={"Authorization": "Bearer short-key"})
  # Round 2's first step sends 6 requests of 16 at once; 3 fit in the 50 left.
  assert short.json()["used"] == MAPPING + EVAL + ROUND + EVAL + 48

  monkeypatch.setenv("FEDBBPT_TEST_API_KEY", "run-key")   # a new key; same config and workdir
  run(config, workdir, log=lambda s: None)
  rows = read_rows(workdir)
  assert [r["round"] for r in rows] == [1, 2]
  assert_rows_match(rows, local_rows)
  used = httpx.get(service.url + "/v1/usage", headers={"Authorization": "Bearer run-key"})
  # Round 2 and its evaluation only: the label mapping (label_map.npz) and zero-shot
  # (baselines.json) are read back from the workdir, not queried again.
  assert used.json()["used"] == ROUND + EVAL
  assert os.path.exists(os.path.join(workdir, "label_map.npz"))


def test_a_service_killed_and_restarted_mid_run_is_retried_through(service, local_outputs):
  bb = RemoteBlackBox(service.url, "restart-key", retry=RetryPolicy(
      max_attempts=15, backoff_seconds=0.2, max_backoff_seconds=2.0, timeout_seconds=30))
  x = images(16, seed=5)
  step = jax.jit(bb)
  results, errors, stop = [], [], threading.Event()

  def calls():
    while not stop.is_set():
      try:
        out = np.asarray(step(x))
        bb.raise_pending_error()
        results.append(out)
      except Exception as e:  # pylint: disable=broad-except
        errors.append(e)
        return
      time.sleep(0.05)

  worker = threading.Thread(target=calls)
  worker.start()
  try:
    deadline = time.monotonic() + 60
    while len(results) < 2 and not errors and time.monotonic() < deadline:
      time.sleep(0.05)
    service.restart()                                  # SIGKILL, then a new process
    done_before = len(results)
    while len(results) < done_before + 2 and not errors and time.monotonic() < deadline + 60:
      time.sleep(0.05)
  finally:
    stop.set()
    worker.join()
  assert not errors, errors
  assert len(results) >= done_before + 2 >= 4
  expected = local_outputs(x)
  for out in results:
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  assert bb.meter.http_retries >= 1
  assert bb.meter.host_calls == len(results)


def test_a_service_killed_mid_run_stops_it_after_the_last_complete_round_and_a_rerun_resumes(
    service, local_rows, tmp_path, monkeypatch):
  workdir = str(tmp_path / "killed")
  config = smoke_config(service.url)
  config.blackbox.max_attempts = 2
  monkeypatch.setenv("FEDBBPT_TEST_API_KEY", "kill-key")

  def log(line):   # round 1 is saved when its line is logged: the service dies right then
    if line.startswith("round 1/2"):
      service.kill()

  try:
    with pytest.raises(RemoteBlackBoxError) as e:
      run(config, workdir, log=log)
  finally:
    service.start()                                     # same port, same keys
  assert not isinstance(e.value, QueryBudgetExceeded) and e.value.status is None
  assert str(e.value).startswith(f"remote black box {service.url}/v1/predict failed after 2 "
                                 "attempts: no HTTP response: ConnectError")
  assert e.value.__notes__ == [f"stopped in round 2 (round 1 is the last one saved in "
                               f"{workdir}): rerun the same command to resume"]
  assert [r["round"] for r in read_rows(workdir)] == [1]
  assert RoundCheckpointer(workdir).latest_round() == 1
  run(config, workdir, log=lambda s: None)              # the service is back: resumes
  assert_rows_match(read_rows(workdir), local_rows)
