"""CLIP as a served black box over real HTTP on loopback: its head, its answers, bad requests.

One service process for the module (``tests/helpers/clip_runs.clip_service_process``):
``python -m fedbbpt_jax.serve --model=clip`` with the 224 px tiny CLIP
(``tests/data/clip_tiny_224``), the tiny Oxford Pets class names (``--class_names``, one
per line) and BlackVIP's pets template (``--templates``), max batch 8. It reports its head,
answers as the local CLIP does, and refuses malformed requests with the statuses
EfficientNet's service gives (``test_service.py``'s table, a representative subset),
nothing charged. Runs against it: ``test_clip_remote_run.py``.
"""

import json

import httpx
import jax
import numpy as np
import pytest

from fedbbpt_jax.blackbox.wire import NPY_CONTENT_TYPE, decode_array, encode_array
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead, templates_from_spec
from fedbbpt_jax.blackbox.zoo import make_image_classifier
from tests.helpers.clip_runs import PETS, clip_service_process
from tests.helpers.tiny_clip import TINY_224

SIZE, MAX_BATCH = 224, 8
PETS_TEMPLATE = "a photo of a {}, a type of pet."


@pytest.fixture(scope="module")
def service(tmp_path_factory):
  with clip_service_process(tmp_path_factory.mktemp("clip_service"), MAX_BATCH) as s:
    yield s


def post(service, body, key="clip-key", content_type=NPY_CONTENT_TYPE):
  headers = {"Content-Type": content_type}
  if key:
    headers["Authorization"] = f"Bearer {key}"
  return httpx.post(service.url + "/v1/predict", content=body, headers=headers, timeout=60)


def used(service, key):
  return httpx.get(service.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()


def images(n, seed=0):
  return np.random.default_rng(seed).uniform(size=(n, SIZE, SIZE, 3)).astype(np.float32)


def test_clip_service_reports_its_zero_shot_head_and_answers_as_the_local_clip(service):
  info = httpx.get(service.url + "/v1/info").json()
  assert info["zero_shot"] == {"class_names": list(PETS), "templates": [PETS_TEMPLATE]}
  assert (info["model"], info["input_shape"], info["output_kind"], info["output_size"]) == \
      ("clip", [SIZE, SIZE, 3], "logits", 3)
  assert info["pixel_range"] == [0.0, 1.0] and info["wire_dtypes"] == ["float32", "uint8"]
  x = images(5)
  r = post(service, encode_array(x))
  assert r.status_code == 200, r.text
  head = ZeroShotHead(PETS, templates_from_spec("blackvip:oxford_pets"))
  local = jax.jit(make_image_classifier("clip", SIZE, TINY_224, head=head))
  padded = np.concatenate([x, np.zeros((MAX_BATCH - 5, SIZE, SIZE, 3), np.float32)])
  np.testing.assert_allclose(decode_array(r.content), np.asarray(local(padded))[:5],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("body,content_type,status,error,words", [
    (b"not an array", NPY_CONTENT_TYPE, 400, "bad_body", "magic"),
    (encode_array(np.zeros((2, 32, 32, 3), np.float32)), NPY_CONTENT_TYPE, 400, "bad_shape",
     "[2, 32, 32, 3] does not match [n, 224, 224, 3]"),
    (encode_array(np.zeros((2, SIZE, SIZE, 3), np.float64)), NPY_CONTENT_TYPE, 400, "bad_dtype",
     "float64"),
    (encode_array(np.zeros((0, SIZE, SIZE, 3), np.float32)), NPY_CONTENT_TYPE, 400,
     "empty_batch", "empty"),
    (encode_array(np.full((2, SIZE, SIZE, 3), np.nan, np.float32)), NPY_CONTENT_TYPE, 400,
     "non_finite_input", "NaN"),
    (encode_array(np.full((2, SIZE, SIZE, 3), 1e38, np.float32)), NPY_CONTENT_TYPE, 400,
     "out_of_range", "float32 pixels must be in [0, 1]; got values in [1e+38, 1e+38] "
     "(301056 of 301056 outside)"),
    (encode_array(np.zeros((9, SIZE, SIZE, 3), np.uint8)), NPY_CONTENT_TYPE, 413,
     "batch_too_large", "batch of 9 inputs exceeds the max batch 8"),
    (encode_array(np.zeros((9, SIZE, SIZE, 3), np.float32)), NPY_CONTENT_TYPE, 413,
     "request_too_large", f"exceeds the limit of {8 * SIZE * SIZE * 3 * 4 + 4096} bytes"),
    (json.dumps([[0.0]]).encode(), "application/json", 415, "unsupported_media_type",
     "application/x-npy"),
])
def test_clip_service_refuses_bad_requests_as_efficientnets_does(service, body, content_type,
                                                                 status, error, words):
  before = used(service, "clip-key")["used"]
  r = post(service, body, content_type=content_type)
  assert r.status_code == status, r.text
  assert r.json()["error"] == error and words in r.json()["message"], r.json()
  assert used(service, "clip-key")["used"] == before             # nothing charged
  assert httpx.get(service.url + "/v1/info").status_code == 200  # still serving


def test_clip_service_refuses_missing_and_unknown_keys(service):
  r = post(service, encode_array(images(1)), key="")
  assert r.status_code == 401 and r.json()["error"] == "missing_api_key"
  r = post(service, encode_array(images(1)), key="stolen-key")
  assert r.status_code == 403 and r.json()["message"] == "unknown API key 'stol...'"
