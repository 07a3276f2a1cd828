"""The image family's config checks for CLIP (``blackbox.model='clip'``): each refusal names
the field. CLIP answers over the dataset's classes, so the label mapping is ``'identity'``;
its templates must read; the templates are refused for a model with its own classes; a
dataset without class names, or an identity mapping over other outputs, is refused when the
run is built."""

import pytest

from configs import clip_blackvip, fmnist_effnet
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.tasks.image.build import zero_shot_head
from fedbbpt_jax.tasks.image.mappings import LABEL_MAPPINGS
from fedbbpt_jax.train import validate_config
from tests.helpers.overrides import with_overrides


def clip_config(**overrides):
  return with_overrides(clip_blackvip.get_config("tiny"), **overrides)


def test_clip_configs_of_every_benchmark_validate():
  validate_config(clip_config())
  for benchmark in clip_blackvip.BENCHMARKS:
    validate_config(clip_blackvip.get_config(benchmark))
  validate_config(clip_config(blackbox__templates="ensemble:oxford_pets"))
  validate_config(clip_config(blackbox__templates="a photo of a {}.|a sketch of a {}."))
  with pytest.raises(ValueError, match=r"unknown config mode 'pets' for configs/clip_blackvip.py"):
    clip_blackvip.get_config("pets")


@pytest.mark.parametrize("overrides, message", [
    ({"task__label_mapping": "frequency"},
     "config.task.label_mapping='frequency': config.blackbox.model='clip' answers over the "
     "dataset's own classes (a zero-shot head of its class names), so output i is class i; set "
     "config.task.label_mapping='identity'"),
    ({"blackbox__templates": "a photo of a cat"},
     "config.blackbox.templates='a photo of a cat': config.blackbox.model='clip' embeds the "
     "dataset's class names in these templates; template 'a photo of a cat' must hold exactly "
     "one '{}'"),
    ({"blackbox__templates": "blackvip:pets"},
     "config.blackbox.templates='blackvip:pets': config.blackbox.model='clip' embeds"),
    ({"blackbox__templates": ""}, "config.blackbox.templates='': config.blackbox.model='clip'"),
    ({"blackbox__weights_path": None}, "config.blackbox.weights_path=None must be a string"),
    ({"task__label_mapping": "identity", "task__remap_every": 2},
     "config.task.label_mapping='identity' cannot be re-derived"),
    ({"blackbox__input_size": 64, "task__image_size": 64},
     "config.blackbox.input_size=64: config.prompt.kind='blackvip' decodes a 7x7 map to 224x224"),
])
def test_clip_config_errors_name_the_field(overrides, message):
  with pytest.raises(ConfigError) as e:
    validate_config(clip_config(**overrides))
  assert message in str(e.value)


def test_clip_templates_are_refused_for_a_model_with_its_own_classes():
  config = with_overrides(fmnist_effnet.get_config("smoke"))
  config.blackbox.templates = "blackvip:dtd"
  with pytest.raises(ConfigError, match=r"config.blackbox.templates='blackvip:dtd' would be "
                                        r"ignored: it is read only when "
                                        r"config.blackbox.model='clip' \(this run: "
                                        r"'efficientnet_lite0'\)"):
    validate_config(config)
  config.blackbox.templates = ""
  validate_config(config)


def test_clip_head_and_identity_mapping_are_refused_where_they_cannot_apply():
  config = clip_config(data__name="digits")
  with pytest.raises(ConfigError, match=r"config.blackbox.model='clip' classifies over the "
                                        r"dataset's class names, and config.data.name='digits' "
                                        r"gives none"):
    zero_shot_head(config, None)
  head = zero_shot_head(clip_config(), ("abyssinian", "american_bulldog"))
  assert head.templates == ("a photo of a {}, a type of pet.",)
  assert zero_shot_head(fmnist_effnet.get_config("smoke"), ("a", "b")) is None
  identity = LABEL_MAPPINGS.get("identity")
  label_map, examples, calls = identity(None, 3, None, "coop:oxford_pets", 3)
  assert (label_map.tolist(), examples, calls) == ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], 0, 0)
  with pytest.raises(ConfigError, match=r"config.task.label_mapping='identity' reads output i as "
                                        r"class i, and the black box answers 1000 outputs for the "
                                        r"10 classes of config.data.name='fashion_mnist'"):
    identity(None, 10, None, "fashion_mnist", 1000)
