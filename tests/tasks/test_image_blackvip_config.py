"""The image family's ``prompt.kind='blackvip'`` fields: what validates, what is refused
(naming the field), and the options the family builds the prompt with."""

import pytest

from configs import fmnist_effnet
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.tasks.image.build import image_prompt_options
from fedbbpt_jax.train import validate_config
from tests.helpers.overrides import with_overrides


def blackvip_config(**overrides):
  """The image smoke config with ``prompt.kind='blackvip'`` on a 224 canvas, then ``overrides``."""
  settings = {"prompt__kind": "blackvip", "prompt__region": "full", "blackbox__input_size": 224}
  return with_overrides(fmnist_effnet.get_config("smoke"), **{**settings, **overrides})


def test_a_blackvip_config_validates():
  validate_config(blackvip_config())
  validate_config(blackvip_config(prompt__bn="batch", prompt__encoder="vit",
                                  prompt__encoder_weights="/models/vit-mae-base"))


def test_the_image_family_builds_blackvip_from_its_prompt_fields():
  config = blackvip_config(prompt__bn="batch", prompt__encoder="vit",
                           prompt__encoder_weights="/models/vit-mae-base", prompt__epsilon=0.4)
  assert image_prompt_options(config.prompt) == {
      "epsilon": 0.4, "bn": "batch", "encoder": "vit", "encoder_blocks": 8,
      "encoder_weights": "/models/vit-mae-base"}
  coordinator = blackvip_config(prompt__kind="coordinator").prompt
  assert image_prompt_options(coordinator) == {
      "epsilon": 1.0, "region": "full", "encoder": "random", "encoder_blocks": 8,
      "encoder_weights": None}


@pytest.mark.parametrize("overrides, message", [
    ({"blackbox__input_size": 64},
     "config.blackbox.input_size=64: config.prompt.kind='blackvip' decodes a 7x7 map to "
     "224x224"),
    ({"prompt__region": "frame"},
     "config.prompt.region='frame': config.prompt.kind='blackvip' covers the whole image"),
    ({"prompt__bn": "group"}, "config.prompt.bn='group' is not one of ['batch', 'example']"),
    ({"prompt__encoder": "vit"},
     "config.prompt.encoder='vit' needs config.prompt.encoder_weights"),
    ({"prompt__encoder_weights": 3}, "config.prompt.encoder_weights=3 must be a string"),
    ({"prompt__kind": "coordinator", "prompt__bn": "batch"},
     "config.prompt.bn='batch' would be ignored: it is read only when "
     "config.prompt.kind='blackvip' (this run: 'coordinator')"),
    ({"prompt__kind": "coordinator", "prompt__encoder": "vit", "prompt__encoder_weights": "m"},
     "config.prompt.encoder='vit' gives one [CLS] vector per image, and "
     "config.prompt.kind='coordinator' decodes a feature map"),
    ({"prompt__kind": "frame", "prompt__region": "frame", "prompt__encoder_weights": "m"},
     "config.prompt.encoder_weights='m' would be ignored: it is read only when "
     "config.prompt.kind is one of ['blackvip', 'coordinator', 'frame_mixture']"),
])
def test_bad_blackvip_settings_are_refused_naming_the_field(overrides, message):
  with pytest.raises(ConfigError) as e:
    validate_config(blackvip_config(**overrides))
  assert message in str(e.value)
