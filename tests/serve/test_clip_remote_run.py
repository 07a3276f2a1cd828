"""CLIP + BlackVIP runs against the CLIP service (real HTTP on loopback) equal local runs.

The service of ``test_clip_service.py`` (``tests/helpers/clip_runs.clip_service_process``:
the 224 px tiny CLIP for the tiny Oxford Pets head). The tiny CLIP + BlackVIP run
(``configs/clip_blackvip.py:tiny``) against it equals the same run on the local surrogate,
the service charges exactly what the run's meter counts, and a run asking for another head
is refused before any query, naming the field.
"""

import httpx
import numpy as np
import pytest

from fedbbpt_jax.train import run
from tests.helpers.clip_runs import clip_service_process, tiny_clip_config, tiny_pets


@pytest.fixture(scope="module")
def service(tmp_path_factory):
  with clip_service_process(tmp_path_factory.mktemp("clip_service")) as s:
    yield s


def used(service, key):
  return httpx.get(service.url + "/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()


def test_clip_blackvip_run_against_the_service_equals_the_local_run(service, tmp_path,
                                                                    monkeypatch):
  root = tiny_pets(tmp_path / "data")
  local = run(tiny_clip_config(root, str(tmp_path / "cache"), baselines__zero_shot=False),
              str(tmp_path / "local"), log=lambda s: None)
  config = tiny_clip_config(root, str(tmp_path / "cache"), baselines__zero_shot=False,
                            blackbox__url=service.url,
                            blackbox__api_key_env="FEDBBPT_TEST_CLIP_KEY")
  monkeypatch.setenv("FEDBBPT_TEST_CLIP_KEY", "run-key")
  remote = run(config, str(tmp_path / "remote"), log=lambda s: None)
  for key in ("final_accuracy", "query_counters", "black_box_queries", "test_examples"):
    assert remote[key] == local[key], key
  np.testing.assert_allclose(remote["final_loss"], local["final_loss"], rtol=1e-4)
  counters = remote["query_counters"]
  assert counters["bb_examples"] == 2 * 2 * 2 * 4 and counters["eval_bb_examples"] == 7
  # charged: exactly the training and evaluation queries the run's meter counts
  assert used(service, "run-key")["used"] == counters["bb_examples"] + counters["eval_bb_examples"]


def test_clip_run_asking_for_another_head_is_refused_naming_the_field(service, tmp_path):
  config = tiny_clip_config(tiny_pets(tmp_path / "data"), str(tmp_path / "cache"),
                            blackbox__url=service.url, blackbox__templates="ensemble:oxford_pets")
  before = used(service, "clip-key")["used"]
  with pytest.raises(ValueError, match=r"answers over 3 classes \('abyssinian', "
                                       r"'american_bulldog', 'beagle'\) with templates "
                                       r"\['a photo of a \{\}, a type of pet.'\], and this run "
                                       r"asks for 3 classes .* config.blackbox.templates="
                                       r"'ensemble:oxford_pets'"):
    run(config, str(tmp_path / "run"), log=lambda s: None)
  assert used(service, "clip-key")["used"] == before
