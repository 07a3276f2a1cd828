"""One registry for every black-box model (``BLACK_BOXES``), each family looking up its tag."""

import pytest

from configs import drug_minilm, fmnist_effnet
from fedbbpt_jax.blackbox import BLACK_BOXES
from fedbbpt_jax.core import UnknownNameError
from fedbbpt_jax.models.causal_lm import SMOLLM2
from fedbbpt_jax.serve.models import servable_models
from fedbbpt_jax.train import ConfigError, validate_config
from tests.helpers.overrides import with_overrides


def test_the_bundled_models_are_in_the_one_registry_under_their_tags():
  assert "efficientnet_lite0" in BLACK_BOXES.names("image")
  assert "all_minilm_l6_v2" in BLACK_BOXES.names("text")
  assert SMOLLM2 in BLACK_BOXES.names("llm")
  assert BLACK_BOXES.tags("all_minilm_l6_v2") == {"text"}
  assert BLACK_BOXES.tags("clip") == {"image", "zero_shot"}   # answers over a head's classes
  # The provider service serves every image and text entry, and no chat LLM.
  assert set(servable_models()) == set(BLACK_BOXES.names("image")) | set(
      BLACK_BOXES.names("text"))
  assert SMOLLM2 not in servable_models()


def test_a_model_of_another_family_is_refused_with_the_names_that_fit():
  with pytest.raises(UnknownNameError) as e:
    BLACK_BOXES.get("all_minilm_l6_v2", "blackbox.model", tag="image")
  message = str(e.value)
  assert message.startswith("config.blackbox.model='all_minilm_l6_v2' is not a registered "
                            "image black-box model (it is registered with tags ['text'])")
  choices = message.split("choose one of ")[1].split("]")[0] + "]"
  assert choices == str(list(BLACK_BOXES.names("image")))
  assert "'efficientnet_lite0'" in choices and "'all_minilm_l6_v2'" not in choices
  assert "BLACK_BOXES.register('all_minilm_l6_v2', ..., tags=('image',))" in message
  # The families' config checks ask for their own tag.
  with pytest.raises(ConfigError, match=r"config\.blackbox\.model='all_minilm_l6_v2' is not one "
                                        r"of \['clip', 'efficientnet_lite0'"):
    validate_config(with_overrides(fmnist_effnet.get_config("smoke"),
                                   blackbox__model="all_minilm_l6_v2"))
  with pytest.raises(ConfigError, match=r"config\.blackbox\.model='efficientnet_lite0'"):
    validate_config(with_overrides(drug_minilm.get_config("smoke"),
                                   blackbox__model="efficientnet_lite0"))


def test_a_user_model_registered_once_is_valid_for_its_family_only():
  BLACK_BOXES.register("user_classifier", lambda input_size, weights_path=None: None,
                       tags=("image",))
  try:
    validate_config(with_overrides(fmnist_effnet.get_config("smoke"),
                                   blackbox__model="user_classifier"))
    assert "user_classifier" in servable_models()
    with pytest.raises(ConfigError, match="user_classifier"):
      validate_config(with_overrides(drug_minilm.get_config("smoke"),
                                     blackbox__model="user_classifier"))
  finally:
    BLACK_BOXES.unregister("user_classifier")
