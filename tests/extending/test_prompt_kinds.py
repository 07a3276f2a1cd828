"""Prompt kinds of the GLUE and instruction families registered from user code only.

Each is a ``PROMPTS`` entry with the family's tag, chosen by ``prompt.kind`` in the config,
and runs through the one driver: a GLUE kind (BDPL's discrete prompt over the user's own
three words, built through the family's ``GlueSetup``) on the tiny RoBERTa and GLUE data
of ``tests/helpers/glue_roberta.py``, and an instruction kind (a menu of three fixed
instructions, one picked by a one-dimensional ``z``) on the tiny GPT-2 as black-box LLM.
A name no entry with the family's tag has is refused listing those that have it.
"""

import re

import jax.numpy as jnp
import numpy as np
import pytest

from configs import glue_roberta, instruction
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.prompts import PROMPTS, PromptedTask, make_discrete_prompt, project_tree
from fedbbpt_jax.tasks.glue import whole_word_ids
from fedbbpt_jax.tasks.instruction.build import task_examples
from fedbbpt_jax.tasks.instruction.prompt_kinds import PromptedInstruction
from fedbbpt_jax.train import run, validate_config
from tests.helpers.glue_roberta import prepare_glue, write_tiny_roberta
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_gpt2 import write_tiny_gpt2
from tests.train.test_glue_run import WORDS, _data

USER_WORDS = "great terrible film"
MENU = ("Write the first letter of the word.", "Repeat the word.", "Write the word backwards.")


# --- a GLUE prompt kind: BDPL's discrete prompt over the user's own words ------------------

def my_words_prompt(setup):
  """A user's GLUE kind: the family's task, a categorical prompt over three fixed words."""
  vocabulary = np.asarray(whole_word_ids(setup.tokenizer, USER_WORDS), np.int32)
  prompt = make_discrete_prompt(vocabulary, setup.config.prompt.length)
  task, blackbox = setup.token_task(prompt)

  def describe(params):
    ids = [int(i) for i in np.asarray(task.prompt_ids(params))]
    return {**setup.describe_prompt_ids(ids), "user_vocabulary": vocabulary.tolist()}

  return PromptedTask(task, blackbox, prompt.init, project_tree, describe)


@pytest.fixture
def my_words():
  PROMPTS.register("my_words", my_words_prompt, tags=("glue",))
  yield "my_words"
  PROMPTS.unregister("my_words")


def test_a_glue_prompt_kind_registered_from_user_code_runs_end_to_end(my_words, tmp_path):
  tfds_dir = prepare_glue(tmp_path / "tfds", {"sst2": _data()["sst2"]})
  model_dir, _ = write_tiny_roberta(str(tmp_path / "roberta"), WORDS)
  config = with_overrides(glue_roberta.get_config("smoke"), prompt__kind=my_words,
                          data__tfds_dir=tfds_dir, blackbox__model_dir=model_dir,
                          train__rounds=1, train__eval_every=1)
  validate_config(config)
  summary = run(config, str(tmp_path / "run"), log=lambda s: None)
  # The word-level tiny tokenizer gives each word its own id, in the order of WORDS.
  user_ids = [WORDS.index(w) + 4 for w in USER_WORDS.split()]  # after the 4 specials
  assert summary["user_vocabulary"] == user_ids
  assert "candidate_vocabulary_size" not in summary  # discrete's entry, not this kind's
  assert len(summary["learned_prompt_ids"]) == config.prompt.length == 3
  assert set(summary["learned_prompt_ids"]) <= set(user_ids)
  assert summary["learned_prompt_tokens"] == [WORDS[i - 4] for i in summary["learned_prompt_ids"]]
  # 1 round x 2 clients x 2 local steps x 4 sampled prompts x 4 rows per batch.
  assert summary["black_box_queries"] == 2 * 2 * 4 * 4


def test_an_unregistered_glue_kind_is_refused_listing_the_registered_ones(my_words):
  with pytest.raises(ConfigError) as e:
    validate_config(with_overrides(glue_roberta.get_config("smoke"), prompt__kind="soft"))
  assert ("config.prompt.kind='soft' is not one of ['discrete', 'my_words'], or register your "
          "own in a module of yours (from fedbbpt_jax.prompts import PROMPTS; "
          "PROMPTS.register('soft', ..., tags=('glue',)))") in str(e.value)


# --- an instruction prompt kind: a menu of fixed instructions -----------------------------

class MenuGenerator:
  """``z`` in ``[-1, 1]`` picks one of ``MENU`` (thirds of the interval), cached by ``z``."""

  intrinsic_dim = 1

  def __init__(self, exemplars):
    self.exemplars = tuple(exemplars)
    self.generations, self.asked = 0, []

  def generate(self, zs):
    zs = np.asarray(zs, np.float32).reshape(-1)
    self.asked += zs.tolist()
    self.generations += len(zs)
    return [MENU[min(int((z + 1) / 2 * len(MENU)), len(MENU) - 1)] for z in zs]

  def cache_state(self):
    return {}

  def load_cache_state(self, state):
    del state


@pytest.fixture
def menu():
  made = []

  def menu_prompt(setup):
    made.append(MenuGenerator(setup.exemplars))
    return PromptedInstruction(made[-1], init_prompt=lambda key: {"z": jnp.zeros((1,))},
                               project=lambda params: {"z": jnp.clip(params["z"], -1, 1)})

  PROMPTS.register("menu", menu_prompt, tags=("instruction",))
  yield made
  PROMPTS.unregister("menu")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
  return str(write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2")))


def instruction_smoke(model, **changes):
  config = instruction.get_config("smoke")
  config.generator.model_path = config.llm.model_path = model
  return with_overrides(config, **changes)


def test_an_instruction_prompt_kind_registered_from_user_code_runs_end_to_end(menu, tiny_gpt2,
                                                                              tmp_path):
  config = instruction_smoke(tiny_gpt2, prompt__kind="menu", train__rounds=1,
                             baselines__local_only=False)
  validate_config(config)
  summary = run(config, str(tmp_path), log=lambda s: None)
  generator, = menu  # built once, from the task's first task.exemplars examples
  assert generator.exemplars == task_examples(config)[1][:config.task.exemplars]
  assert summary["zero_shot_instruction"] == MENU[1]  # z = 0: the middle third
  assert summary["instruction"] in MENU
  assert summary["generations"] == generator.generations == len(generator.asked) > 0
  # 1 round x 2 clients x 1 step x 2 SPSA candidates x 3 examples per batch.
  assert summary["black_box_queries"] == 2 * 2 * 3


def test_an_unregistered_instruction_kind_is_refused_listing_the_registered_ones(menu):
  with pytest.raises(ConfigError, match=re.escape(
      "config.prompt.kind='discrete' is not one of ['menu', 'soft_instruction'], or register "
      "your own in a module of yours (from fedbbpt_jax.prompts import PROMPTS; "
      "PROMPTS.register('discrete', ..., tags=('instruction',)))")):
    validate_config(with_overrides(instruction.get_config("smoke"), prompt__kind="discrete"))
