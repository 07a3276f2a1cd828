"""The model service over real HTTP on loopback: outputs, keys, budgets, limits, bad input.

One service process serves the whole module (EfficientNet-Lite0 at 32 px, max batch
16). Computed requests hold 9-16 examples, so the service compiles one bucket (16),
shared with the other remote tests through the XLA compilation cache.
"""

import concurrent.futures
import json
import socket
import time

import httpx
import jax
import numpy as np
import pytest

from fedbbpt_jax.blackbox.wire import NPY_CONTENT_TYPE, decode_array, encode_array
from fedbbpt_jax.blackbox.zoo import make_image_classifier
from fedbbpt_jax.serve.batching import batch_buckets
from fedbbpt_jax.serve.process import LOOPBACK, ServiceProcess

SIZE, MAX_BATCH = 32, 16
KEYS = {"alpha-key": None, "small-key": 26, **{f"client-{i}": None for i in range(4)}}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
  keys_path = tmp_path_factory.mktemp("keys") / "keys.json"
  keys_path.write_text(json.dumps(KEYS))
  cache = jax.config.jax_compilation_cache_dir or ""
  with ServiceProcess(input_size=SIZE, max_batch=MAX_BATCH, keys_path=str(keys_path),
                      env={"JAX_COMPILATION_CACHE_DIR": cache,
                           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}) as s:
    yield s


@pytest.fixture(scope="module")
def local_outputs():
  """The local surrogate, run on the service's padded bucket shapes."""
  forward = jax.jit(make_image_classifier("efficientnet_lite0", SIZE))

  def outputs(x):
    bucket = next(b for b in batch_buckets(MAX_BATCH) if b >= len(x))
    padded = np.zeros((bucket, SIZE, SIZE, 3), np.float32)
    padded[:len(x)] = x
    return np.asarray(forward(padded))[:len(x)]

  return outputs


def images(n, seed=0):
  return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype(np.float32)


def post(service, body, key="alpha-key", content_type=NPY_CONTENT_TYPE):
  headers = {"Content-Type": content_type}
  if key:
    headers["Authorization"] = f"Bearer {key}"
  return httpx.post(service.url + "/v1/predict", content=body, headers=headers, timeout=60)


def usage(service, key):
  r = httpx.get(service.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"})
  assert r.status_code == 200, r.text
  return r.json()


def test_info_describes_the_model(service):
  info = httpx.get(service.url + "/v1/info").json()
  assert info["model"] == "efficientnet_lite0"
  assert info["input_shape"] == [SIZE, SIZE, 3] and info["input_dtype"] == "float32"
  assert info["output_kind"] == "logits" and info["output_size"] == 1000
  assert info["max_batch"] == MAX_BATCH and info["batch_buckets"] == [1, 2, 4, 8, 16]
  assert info["wire_dtypes"] == ["float32", "uint8"] and info["open"] is False
  assert info["max_request_bytes"] == MAX_BATCH * SIZE * SIZE * 3 * 4 + 4096


def test_predict_round_trip_equals_the_local_surrogate(service, local_outputs):
  for n, seed in ((16, 0), (11, 1)):
    x = images(n, seed)
    r = post(service, encode_array(x))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == NPY_CONTENT_TYPE
    out = decode_array(r.content)
    assert out.shape == (n, 1000) and out.dtype == np.float32
    np.testing.assert_allclose(out, local_outputs(x), rtol=1e-5, atol=1e-5)
    assert np.abs(out).max() > 0.1


def test_uint8_wire_is_read_as_levels_over_255(service, local_outputs):
  levels = np.random.default_rng(2).integers(0, 256, size=(12, SIZE, SIZE, 3), dtype=np.uint8)
  r = post(service, encode_array(levels))
  assert r.status_code == 200, r.text
  expected = local_outputs(levels.astype(np.float32) / np.float32(255))
  np.testing.assert_allclose(decode_array(r.content), expected, rtol=1e-5, atol=1e-5)


def test_missing_and_unknown_keys_are_refused(service):
  r = post(service, encode_array(images(4)), key="")
  assert r.status_code == 401 and r.json()["error"] == "missing_api_key"
  assert "Authorization: Bearer" in r.json()["message"]
  r = post(service, encode_array(images(4)), key="stolen-key")
  assert r.status_code == 403 and r.json()["message"] == "unknown API key 'stol...'"
  assert httpx.get(service.url + "/v1/usage").status_code == 401


@pytest.mark.parametrize("body,content_type,status,error,words", [
    (b"not an array", NPY_CONTENT_TYPE, 400, "bad_body", "magic"),
    (encode_array(images(4))[:-10], NPY_CONTENT_TYPE, 400, "bad_body", "EOF"),
    (encode_array(np.zeros((4, 16, 32, 3), np.float32)), NPY_CONTENT_TYPE, 400, "bad_shape",
     "[4, 16, 32, 3] does not match [n, 32, 32, 3]"),
    (encode_array(np.zeros((4, 32, 32, 3), np.float64)), NPY_CONTENT_TYPE, 400, "bad_dtype",
     "float64"),
    (encode_array(np.zeros((0, 32, 32, 3), np.float32)), NPY_CONTENT_TYPE, 400, "empty_batch",
     "empty"),
    (encode_array(np.full((4, 32, 32, 3), np.nan, np.float32)), NPY_CONTENT_TYPE, 400,
     "non_finite_input", "NaN"),
    # Pixels outside [0, 1] are refused, not clipped: 1e38 gave 200 with inf logits, charged.
    (encode_array(np.full((4, 32, 32, 3), 1e38, np.float32)), NPY_CONTENT_TYPE, 400,
     "out_of_range", "float32 pixels must be in [0, 1]; got values in [1e+38, 1e+38] "
     "(12288 of 12288 outside)"),
    (encode_array(np.linspace(-0.5, 1.0, 4 * 32 * 32 * 3, dtype=np.float32).reshape(4, 32, 32, 3)),
     NPY_CONTENT_TYPE, 400, "out_of_range", "got values in [-0.5, 1.0] (4096 of 12288 outside)"),
    (encode_array(np.zeros((17, 32, 32, 3), np.uint8)), NPY_CONTENT_TYPE, 413, "batch_too_large",
     "batch of 17 inputs exceeds the max batch 16"),
    (encode_array(np.zeros((17, 32, 32, 3), np.float32)), NPY_CONTENT_TYPE, 413,
     "request_too_large", "exceeds the limit of 200704 bytes"),
    (json.dumps([[0.0]]).encode(), "application/json", 415, "unsupported_media_type",
     "application/x-npy"),
])
def test_bad_requests_get_a_json_error_naming_the_problem(service, body, content_type, status,
                                                          error, words):
  before = usage(service, "alpha-key")
  r = post(service, body, content_type=content_type)
  assert r.status_code == status, r.text
  assert r.json()["error"] == error and words in r.json()["message"], r.json()
  assert usage(service, "alpha-key")["used"] == before["used"]   # nothing charged
  assert httpx.get(service.url + "/v1/info").status_code == 200  # still serving


def test_big_endian_float32_is_read_as_the_same_pixels(service, local_outputs):
  x = images(9, seed=7)
  assert x.astype(">f4").dtype.name == "float32"   # a valid float32 .npy, other byte order
  r = post(service, encode_array(x.astype(">f4")))
  assert r.status_code == 200, r.text                # was 500 and a traceback in the log
  little = post(service, encode_array(x))
  np.testing.assert_array_equal(decode_array(r.content), decode_array(little.content))
  np.testing.assert_allclose(decode_array(r.content), local_outputs(x), rtol=1e-5, atol=1e-5)


def test_a_client_disconnecting_mid_body_is_logged_in_one_line(service):
  body = encode_array(images(4, seed=8))
  start = len(service.log_tail(10**9))
  with socket.create_connection((LOOPBACK, service.port)) as sock:
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer alpha-key"
                 b"\r\nContent-Type: application/x-npy\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body[:1000])
  deadline = time.monotonic() + 30
  while "disconnected" not in service.log_tail(10**9)[start:] and time.monotonic() < deadline:
    time.sleep(0.05)
  assert httpx.get(service.url + "/v1/info").status_code == 200   # still serving
  new = service.log_tail(10**9)[start:]
  assert "Traceback" not in new and "Exception in ASGI" not in new, new
  lines = [line for line in new.splitlines() if "disconnected" in line]
  assert lines == [f"WARNING: client 127.0.0.1 disconnected after sending 1000 of {len(body)} "
                   "body bytes of POST /v1/predict; request dropped, nothing charged"], new


def test_budget_is_charged_per_example_and_refuses_whole_requests(service):
  assert usage(service, "small-key") == {"key_id": "smal...", "used": 0, "budget": 26,
                                         "remaining": 26, "requests": 0, "refused_requests": 0}
  assert post(service, encode_array(images(16)), key="small-key").status_code == 200
  r = post(service, encode_array(images(16)), key="small-key")
  assert r.status_code == 402
  body = r.json()
  assert body["error"] == "budget_exceeded" and "query budget spent" in body["message"]
  assert (body["used"], body["budget"], body["remaining"], body["requested"]) == (16, 26, 10, 16)
  assert post(service, encode_array(images(10)), key="small-key").status_code == 200
  assert post(service, encode_array(images(1)), key="small-key").status_code == 402
  assert usage(service, "small-key") == {"key_id": "smal...", "used": 26, "budget": 26,
                                         "remaining": 0, "requests": 2, "refused_requests": 2}


def test_request_sizes_share_a_fixed_set_of_compiled_buckets(service):
  for n in (9, 13, 16, 10):
    assert post(service, encode_array(images(n, seed=n))).status_code == 200
  compiled = httpx.get(service.url + "/v1/info").json()["compiled_buckets"]
  assert compiled == [16]


def test_several_clients_at_once_get_their_own_results(service, local_outputs):
  inputs = {i: images(12, seed=10 + i) for i in range(4)}

  def client(i):
    with httpx.Client(base_url=service.url, timeout=60,
                      headers={"Authorization": f"Bearer client-{i}",
                               "Content-Type": NPY_CONTENT_TYPE}) as http:
      return [decode_array(http.post("/v1/predict", content=encode_array(inputs[i])).content)
              for _ in range(3)]

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = dict(zip(range(4), pool.map(client, range(4))))
  for i, outs in results.items():
    expected = local_outputs(inputs[i])
    for out in outs:
      np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert usage(service, f"client-{i}")["used"] == 36
    assert usage(service, f"client-{i}")["requests"] == 3
