"""A chat LLM registered by name from test code, as a user registers theirs.

``BLACK_BOXES`` (tag ``'llm'``) is what the instruction family (``generator.model_path``,
``llm.model_path``) and the chat service (``--model``) look names up in before they read
a path; the model registered here is a tiny random Llama written as GGUF in the test.
"""

import pytest

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.blackbox import BLACK_BOXES
from fedbbpt_jax.blackbox.llm_zoo import load_llm
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.models.causal_lm import SMOLLM2, load_causal_lm
from fedbbpt_jax.tasks.instruction.llms import load_model
from tests.helpers.tiny_llama import write_llama_gguf

NAME = "tiny-test-llm"


@pytest.fixture
def registered(tmp_path):
  path = write_llama_gguf(str(tmp_path / "tiny.gguf"))
  loads = []
  BLACK_BOXES.register(NAME, lambda: loads.append(1) or load_causal_lm(path), tags=("llm",))
  yield path, loads
  BLACK_BOXES.unregister(NAME)


def _shape(lm):
  return lm.max_positions, lm.hidden_size, lm.embedding_std, lm.stop_ids


def test_a_registered_llm_is_found_by_name_where_a_path_is_taken(registered):
  path, loads = registered
  assert SMOLLM2 in BLACK_BOXES.names("llm")
  want = _shape(load_causal_lm(path))
  assert _shape(load_llm(NAME)) == want and loads == [1]
  assert _shape(LocalChatLLM(NAME).lm) == want and loads == [1, 1]  # the chat service's path
  assert _shape(load_model(NAME, "generator.model_path")) == want and loads == [1, 1, 1]


def test_an_unknown_name_lists_the_registered_llms_and_how_to_add_one(tmp_path):
  missing = str(tmp_path / "nowhere.gguf")
  with pytest.raises(FileNotFoundError) as e:
    load_llm(missing)
  assert f"registered LLMs: ['{SMOLLM2}']" in str(e.value)
  assert f"BLACK_BOXES.register({missing!r}, ..., tags=('llm',))" in str(e.value)
  with pytest.raises(ConfigError, match=r"config\.llm\.model_path="):
    load_model(missing, "llm.model_path")
