"""A sentence encoder as a real HTTP service: token ids on an int32 wire.

One service process for the module, serving the tiny test encoder ``tiny_bert`` (MiniLM's
vocabulary and tokenizer; ``tests/helpers/tiny_service.py``) with ``--max_length=24``, the
text smoke config's row length: the service serves any registered sentence encoder
through the same builder as MiniLM's, and these tests check its plumbing, not the model.
The text smoke experiment run against it equals the same run on the local surrogate,
and the service charges exactly what the meter counts.
"""

import json

import httpx
import jax
import numpy as np
import pytest

from configs.drug_minilm import get_config
from fedbbpt_jax.blackbox.text_zoo import make_text_encoder
from fedbbpt_jax.blackbox.wire import decode_array, encode_array
from fedbbpt_jax.serve.models import ModelOptions, build_served_model
from fedbbpt_jax.train import ConfigError, run, validate_config
from tests.helpers.tiny_models import TEXT, register, tiny
from tests.helpers.tiny_service import tiny_service_process

MAX_LENGTH, MAX_BATCH = 24, 32


@pytest.fixture(scope="module")
def service(tmp_path_factory):
  keys_path = tmp_path_factory.mktemp("keys") / "keys.json"
  keys_path.write_text(json.dumps({"text-key": None, "run-key": None}))
  cache = jax.config.jax_compilation_cache_dir or ""
  register()
  with tiny_service_process(TEXT, max_batch=MAX_BATCH, keys_path=str(keys_path),
                            extra_args=(f"--max_length={MAX_LENGTH}",),
                            env={"JAX_COMPILATION_CACHE_DIR": cache,
                                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}) as s:
    yield s


def post_ids(service, ids):
  return httpx.post(service.url + "/v1/predict", content=encode_array(ids),
                    headers={"Authorization": "Bearer text-key",
                             "Content-Type": "application/x-npy"}, timeout=60)


def test_service_embeds_token_ids_like_the_local_encoder(service):
  info = httpx.get(service.url + "/v1/info").json()
  assert (info["model"], info["input_shape"], info["wire_dtypes"], info["output_kind"],
          info["output_size"]) == (TEXT, [MAX_LENGTH], ["int32"], "embedding", 16)
  rng = np.random.default_rng(0)
  ids = np.zeros((5, MAX_LENGTH), np.int32)
  ids[:, 0], ids[:, 1:12] = 101, rng.integers(1000, 5000, size=(5, 11))
  ids[:, 12] = 102
  remote = decode_array(post_ids(service, ids).content)
  local = np.asarray(make_text_encoder(TEXT, MAX_LENGTH)(ids))
  np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(remote, axis=1), 1.0, rtol=1e-5)


def test_bad_token_ids_and_pixel_dtypes_are_refused_naming_the_cause(service):
  ids = np.zeros((2, MAX_LENGTH), np.int32)
  ids[0, 3] = 30522   # one past the vocabulary
  r = post_ids(service, ids)
  assert r.status_code == 400 and r.json()["error"] == "bad_token_id"
  assert "[0, 30522)" in r.json()["message"]
  r = post_ids(service, np.zeros((2, MAX_LENGTH), np.float32))
  assert r.status_code == 400 and r.json()["error"] == "bad_dtype"


def test_token_ids_in_either_byte_order_and_none_outside_the_vocabulary(service):
  rng = np.random.default_rng(1)
  ids = np.zeros((3, MAX_LENGTH), np.int32)
  ids[:, 0], ids[:, 1:9], ids[:, 9] = 101, rng.integers(1000, 5000, size=(3, 8)), 102
  big = post_ids(service, ids.astype(">i4"))   # a valid int32 body, big-endian (was a 500)
  assert big.status_code == 200, big.text
  np.testing.assert_array_equal(decode_array(big.content),
                                decode_array(post_ids(service, ids).content))
  ids[2, 5] = -1                                # below the vocabulary: refused, not clipped
  r = post_ids(service, ids)
  assert r.status_code == 400 and r.json()["error"] == "bad_token_id"
  assert r.json()["message"] == f"token ids must be in [0, 30522); got -1..{ids.max()}"
  assert httpx.get(service.url + "/v1/info").json()["id_range"] == [0, 30522]


def test_text_smoke_run_against_the_service_equals_the_local_run(service, tmp_path, monkeypatch):
  local_config = tiny(get_config("smoke"))
  local_config.train.rounds = 2
  local = run(local_config, str(tmp_path / "local"), log=lambda s: None)
  config = tiny(get_config("smoke"))
  config.train.rounds = 2
  config.blackbox.url = service.url
  config.blackbox.api_key_env = "FEDBBPT_TEST_API_KEY"
  monkeypatch.setenv("FEDBBPT_TEST_API_KEY", "run-key")
  remote = run(config, str(tmp_path / "remote"), log=lambda s: None)
  for key in ("zero_shot_accuracy", "final_accuracy", "learned_prompt_ids", "black_box_queries"):
    assert remote[key] == local[key], key
  np.testing.assert_allclose(remote["final_loss"], local["final_loss"], rtol=1e-4)
  counters = remote["query_counters"]
  used = httpx.get(service.url + "/v1/usage", headers={"Authorization": "Bearer run-key"}).json()
  # Everything sent was charged, nothing more: the meter's training examples (verbalizers
  # included) and evaluations, plus the zero-shot baseline's pass over the test reviews
  # (baselines are computed before the round meter starts).
  zero_shot = config.data.test_examples
  assert used["used"] == counters["bb_examples"] + counters["eval_bb_examples"] + zero_shot


def test_soft_prompt_with_a_service_is_refused():
  config = get_config("soft_smoke")
  config.blackbox.url = "http://127.0.0.1:9"
  with pytest.raises(ConfigError, match="config.blackbox.url"):
    validate_config(config)


def test_minilm_is_served_as_int32_token_ids_to_unit_embeddings_of_384():
  served = build_served_model("all_minilm_l6_v2", ModelOptions(max_length=MAX_LENGTH))
  assert (served.name, served.input_shape, served.input_dtype, served.wire_dtypes,
          served.output_kind, served.output_size, served.id_range, served.pixel_range) == (
              "all_minilm_l6_v2", (MAX_LENGTH,), "int32", ("int32",), "embedding", 384,
              (0, 30522), None)
