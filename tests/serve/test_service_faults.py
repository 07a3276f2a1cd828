"""The image/text model service's failure paths, on a toy three-pixel model served by a
real uvicorn server on loopback (``threaded_server``): a body that stops mid-way gets a
408 and is not charged while other clients are answered; a model that fails is a 500,
refunded; a malformed Content-Length is a 400 (uvicorn refuses most itself: the app is
then called over ASGI directly)."""

import asyncio
import json
import logging
import select
import socket
import threading

import httpx
import numpy as np

from fedbbpt_jax.blackbox.wire import NPY_CONTENT_TYPE, decode_array, encode_array
from fedbbpt_jax.serve import KeyStore, ServedModel, create_app
from tests.helpers.threaded_server import serving


def toy_model(forward=lambda x: 2.0 * x):
  return ServedModel(name="doubling", input_shape=(3,), input_dtype="float32",
                     wire_dtypes=("float32",), output_kind="logits", output_size=3,
                     forward=forward, pixel_range=(0.0, 1.0))


PIXELS = np.asarray([[0.5, 0.25, 1.0], [0.0, 0.75, 0.125], [1.0, 1.0, 0.5]], np.float32)


def post(url, array, key):
  return httpx.post(url + "/v1/predict", content=encode_array(array), timeout=30,
                    headers={"Authorization": f"Bearer {key}", "Content-Type": NPY_CONTENT_TYPE})


def usage(url, key):
  u = httpx.get(url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
  return u["used"], u["remaining"], u["requests"]


def read_response(sock):
  """``(status, headers, body)`` of the one response a server sends and then closes."""
  data = b""
  while chunk := sock.recv(65536):
    data += chunk
  head, _, body = data.partition(b"\r\n\r\n")
  lines = head.decode("latin-1").split("\r\n")
  headers = dict(line.lower().split(": ", 1) for line in lines[1:])
  return int(lines[0].split()[1]), headers, body


def test_a_body_that_stops_mid_way_is_a_408_charged_nothing_while_others_are_answered(caplog):
  keys = KeyStore({"stalled-key": 10, "other-key": 10})
  app = create_app(toy_model(), keys, max_batch=4, body_timeout_s=1.0, warmup=True)
  with serving(app) as url, \
      caplog.at_level(logging.WARNING, logger="fedbbpt_jax.serve"):
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as stalled:
      stalled.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
                      b"stalled-key\r\nContent-Type: application/x-npy\r\nContent-Length: 1000"
                      b"\r\n\r\n" + b"\x93NUMPY\x01\x00v\x00")  # 10 of 1000 bytes, then nothing
      # Another client is answered while the stalled request waits for its body...
      r = post(url, PIXELS, "other-key")
      assert r.status_code == 200, r.text
      np.testing.assert_array_equal(decode_array(r.content), 2 * PIXELS)
      assert select.select([stalled], [], [], 0)[0] == []  # ...which has no answer yet
      status, headers, body = read_response(stalled)
  assert status == 408 and headers["connection"] == "close"  # answered, then closed
  assert json.loads(body) == {
      "error": "request_timeout", "message": "the request body did not arrive within 1 s "
      "(got 10 of 1000 bytes); nothing was charged"}
  assert [r.getMessage() for r in caplog.records if r.name == "fedbbpt_jax.serve"] == [
      "client 127.0.0.1 sent 10 of 1000 body bytes of POST /v1/predict in 1 s; answered 408, "
      "nothing charged"]
  keys_usage = {k: keys.usage(k) for k in ("stalled-key", "other-key")}
  assert (keys_usage["stalled-key"]["used"], keys_usage["stalled-key"]["requests"]) == (0, 0)
  assert (keys_usage["other-key"]["used"], keys_usage["other-key"]["requests"]) == (3, 1)


def test_a_model_failure_is_a_500_and_refunded_and_a_later_request_works():
  failing = threading.Event()
  failing.set()

  def forward(x):
    if failing.is_set():  # raised while the forward is traced: no program is cached
      raise RuntimeError("accelerator lost")
    return 2.0 * x

  with serving(create_app(toy_model(forward), KeyStore({"key": 5}), max_batch=4)) as url:
    r = post(url, PIXELS, "key")
    assert r.status_code == 500
    assert r.json() == {"error": "model_error",
                        "message": "model failed: RuntimeError: accelerator lost"}
    assert usage(url, "key") == (0, 5, 0)       # refunded: nothing used, no request counted
    failing.clear()
    r = post(url, PIXELS, "key")
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_array(r.content), 2 * PIXELS)
    assert usage(url, "key") == (3, 2, 1)
    r = post(url, PIXELS, "key")                # the image service counts examples
    assert r.status_code == 402
    assert r.json()["message"] == ("query budget spent: key 'key...' has used 3 of 5 examples; "
                                   "this request of 3 examples needs more than the 2 left "
                                   "(refused whole, nothing charged)")


def asgi_post(app, headers, body=b""):
  """``(status, headers, body)`` of one POST /v1/predict sent to ``app`` over ASGI."""
  sent = []

  async def receive():
    return {"type": "http.request", "body": body, "more_body": False}

  async def send(message):
    sent.append(message)

  scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
           "scheme": "http", "path": "/v1/predict", "raw_path": b"/v1/predict",
           "query_string": b"", "root_path": "", "headers": headers,
           "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
  asyncio.run(app(scope, receive, send))
  start, content = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
  return start["status"], dict(start["headers"]), json.loads(content)


def test_a_malformed_content_length_is_a_400_naming_it():
  keys = KeyStore({"key": 10})
  app = create_app(toy_model(), keys, max_batch=4)
  auth = [(b"authorization", b"Bearer key"), (b"content-type", b"application/x-npy")]
  # '\xb2' is latin-1 for the superscript two: str.isdigit() said yes, int() then raised (500).
  for value, shown in [(b"12abc", "'12abc'"), (b"-3", "'-3'"), (b"\xb2", "'\u00b2'"),
                       (b"", "''")]:
    status, headers, body = asgi_post(app, auth + [(b"content-length", value)], b"\x00" * 3)
    assert (status, body) == (400, {"error": "bad_content_length",
                                    "message": f"invalid Content-Length {shown}"}), value
    assert headers[b"connection"] == b"close"
  assert keys.usage("key")["used"] == 0 and keys.usage("key")["requests"] == 0
  # Over a real uvicorn server such a header never reaches the app: uvicorn answers 400.
  with serving(app) as url, socket.create_connection(
      ("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30) as sock:
    sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer key\r\n"
                 b"Content-Length: 12abc\r\n\r\n")
    status, _, body = read_response(sock)
  assert (status, body) == (400, b"Invalid HTTP request received.")
