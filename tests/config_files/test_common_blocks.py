"""The experiment configs share their common blocks through ``configs/common.py``."""

import pytest

from configs import common, drug_minilm, fmnist_effnet, glue_roberta

MODES = {
    "image": (fmnist_effnet, ("", "smoke", "dfedsam")),
    "text": (drug_minilm, ("", "sentiment", "smoke", "soft", "soft_smoke", "dfedsam")),
    "glue": (glue_roberta, ("", "smoke") + glue_roberta.GLUE_TASK_NAMES),
}
ALL_MODES = [(family, mode) for family, (_, modes) in MODES.items() for mode in modes]
SECTIONS = ("server", "train", "baselines", "parallel", "decentralized", "attack")


def _config(family, mode=""):
  return MODES[family][0].get_config(mode)


def _keys(section):
  return set(section.keys())


def test_shared_sections_have_the_same_keys_in_every_family():
  configs = {family: _config(family) for family in MODES}
  for section in SECTIONS:
    assert _keys(configs["image"][section]) == _keys(configs["text"][section]) == \
        _keys(configs["glue"][section]), section


def test_blackbox_connection_fields_are_the_same_in_image_and_text():
  connection = _keys(common.remote_blackbox())
  image = _keys(_config("image").blackbox) & connection
  text = _keys(_config("text").blackbox) & connection
  assert image == text == connection == {"url", "api_key_env", "max_attempts", "backoff_seconds",
                                         "timeout_seconds", "max_concurrency"}


def test_image_demo_values_are_unchanged():
  c = _config("image")
  assert c.seed == 0
  assert c.client.lr == 0.01
  assert c.client.local_steps == 10
  assert c.client.batch_size == 32
  assert c.zo.num_directions == 2
  assert c.train.rounds == 10
  assert c.data.num_clients == 5
  assert c.server.algorithm == "fedbbpt"
  assert c.task.family == "image"


@pytest.mark.parametrize("family,mode", ALL_MODES)
def test_every_mode_takes_its_shared_blocks_from_common(family, mode):
  c = _config(family, mode)
  assert _keys(c.server) == _keys(common.server())
  assert _keys(c.train) == _keys(common.train(rounds=1, eval_every=1, eval_batch_size=1))
  assert _keys(c.baselines) == _keys(common.baselines())
  parallel = common.parallel(cpu_devices=0) if family == "image" else common.parallel()
  assert _keys(c.parallel) == _keys(parallel)
  assert _keys(common.partition(num_clients=1)) <= _keys(c.data)
  assert _keys(common.client_schedule(lr=1.0, local_steps=1, batch_size=1)) <= _keys(c.client)
  if family in ("image", "text"):
    assert _keys(common.remote_blackbox()) <= _keys(c.blackbox)
  assert c.task.family == family


@pytest.mark.parametrize("family", list(MODES))
def test_unknown_mode_is_rejected(family):
  module = MODES[family][0]
  path = f"configs/{module.__name__.rsplit('.', 1)[-1]}.py"
  with pytest.raises(ValueError, match=f"unknown config mode 'bogus' for {path}"):
    module.get_config("bogus")
