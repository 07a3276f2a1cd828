"""One prompt registry for every family: each family accepts only the kinds with its tag."""

import pytest

from configs import drug_minilm, fmnist_effnet, glue_roberta, instruction
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.train import validate_config
from tests.helpers.overrides import with_overrides


def test_every_kind_is_tagged_with_the_family_that_builds_it():
  assert PROMPTS.names("image") == ("blackvip", "coordinator", "frame", "frame_mixture",
                                    "intrinsic_frame")
  assert PROMPTS.names("text") == ("discrete", "soft")
  assert PROMPTS.names("glue") == ("discrete",)
  assert PROMPTS.names("instruction") == ("soft_instruction",)
  # One entry, one builder for both families that build BDPL's discrete prompt.
  assert PROMPTS.tags("discrete") == {"text", "glue"}


@pytest.mark.parametrize("config, kind, allowed, tag", [
    (fmnist_effnet.get_config("smoke"), "soft",
     "['blackvip', 'coordinator', 'frame', 'frame_mixture', 'intrinsic_frame']", "image"),
    (drug_minilm.get_config("smoke"), "frame", "['discrete', 'soft']", "text"),
    (glue_roberta.get_config("smoke"), "soft", "['discrete']", "glue"),
    (instruction.get_config("smoke"), "discrete", "['soft_instruction']", "instruction"),
])
def test_a_family_refuses_another_familys_kind_and_says_how_to_register(config, kind, allowed,
                                                                          tag):
  with pytest.raises(ConfigError) as e:
    validate_config(with_overrides(config, prompt__kind=kind))
  message = str(e.value)
  assert f"config.prompt.kind={kind!r} is not one of {allowed}" in message
  assert f"PROMPTS.register({kind!r}, ..., tags=({tag!r},))" in message
