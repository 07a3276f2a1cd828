"""Instruction track parts: rule tasks with their true definitions, scorers (golden
values), soft prompt -> instruction (fixed projection, cache, degeneracy) on a tiny
GPT-2 made in the test, and instruction scoring by a black-box LLM."""

import json

import jax
import numpy as np
import pytest

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.models.causal_lm import load_causal_lm
from fedbbpt_jax.prompts.instruction_generator import InstructionGenerator, exemplar_prompt
from fedbbpt_jax.tasks.instruction.execution import InstructionScorer, execution_messages
from fedbbpt_jax.tasks.instruction.rule_tasks import (RULES, load_induction_json, number_words,
                                                      plural, rule_task)
from fedbbpt_jax.tasks.instruction.scorers import contains, degenerate, exact_match, f1
from tests.helpers.tiny_gpt2 import write_tiny_gpt2
from tests.helpers.tiny_llama import write_llama_gguf


def test_rule_tasks_follow_their_definitions():
  assert [number_words(n) for n in (0, 13, 40, 99, 105, 4021, 9000)] == [
      "zero", "thirteen", "forty", "ninety-nine", "one hundred five",
      "four thousand twenty-one", "nine thousand"]
  assert [plural(w) for w in ("box", "city", "key", "church", "dog")] == [
      "boxes", "cities", "keys", "churches", "dogs"]
  for name in RULES:
    task = rule_task(name, 20, seed=3)
    assert task.definition and len(task.examples) == 20
    assert task.examples == rule_task(name, 20, seed=3).examples  # seeded
    assert task.examples != rule_task(name, 20, seed=4).examples
  for x, y in rule_task("sum", 20).examples:
    assert int(y) == sum(map(int, x.split()))
  for x, y in rule_task("word_sorting", 20).examples:
    assert y.split() == sorted(x.split())
  for x, y in rule_task("letters_list", 10).examples:
    assert y.replace(" ", "") == x
  with pytest.raises(KeyError, match="no rule task 'nope'"):
    rule_task("nope", 3)


def test_induction_json_is_read_in_index_order(tmp_path):
  path = tmp_path / "antonyms.json"
  path.write_text(json.dumps({"examples": {"2": {"input": "hot", "output": ["cold"]},
                                           "10": {"input": "up", "output": "down"},
                                           "1": {"input": "big", "output": "small"}}}))
  task = load_induction_json(str(path))
  assert task.name == "antonyms" and task.definition is None
  assert task.examples == (("big", "small"), ("hot", "cold"), ("up", "down"))
  path.write_text(json.dumps({"examples": {"1": {"input": "x"}}}))
  with pytest.raises(ValueError, match="example '1' lacks 'input' or 'output'"):
    load_induction_json(str(path))


def test_scorers_golden_values():
  assert exact_match("The Apples.", "apples") == 1.0 and exact_match("apple", "apples") == 0.0
  assert exact_match("twenty-one", "Twenty-one!") == 1.0
  assert contains("it is forty two", "forty two") == 1.0
  assert contains("it is forty twofold", "forty two") == 0.0
  assert f1("red blue green", "blue green yellow") == pytest.approx(2 / 3)
  assert f1("", "") == 1.0 and f1("x", "") == 0.0
  # An expected output that is only an article ("a", the first letter of "apple") is
  # compared with articles kept; elsewhere articles are dropped.
  assert exact_match("A.", "a") == 1.0 and exact_match("b", "a") == 0.0
  assert contains('The first letter is "a".', "a") == 1.0
  assert contains("The first letter is b.", "a") == 0.0
  assert contains("the box", "box") == 1.0 and exact_match("the box", "box") == 1.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))
  return path, load_causal_lm(path)


EXEMPLARS = (("cat", "c"), ("dog", "d"))


def test_generator_projection_cache_and_determinism(tiny):
  _, lm = tiny
  gen = InstructionGenerator(lm, EXEMPLARS, max_new_tokens=8)
  assert gen.projection.shape == (10, 5 * 16)
  assert gen.projection.min() >= -1 and gen.projection.max() <= 1
  # The default scale gives soft tokens the token embeddings' spread.
  zs = np.asarray(jax.random.uniform(jax.random.key(0), (64, 10), minval=-1, maxval=1))
  assert float(np.std(gen.soft_tokens(zs))) == pytest.approx(lm.embedding_std, rel=0.25)
  first = gen.generate(zs[:4])
  assert gen.generations == 4 and gen.cache_hits == 0
  again = gen.generate(np.concatenate([zs[:4], zs[1:2]]))  # cached, a repeat inside the batch
  assert again == first + [first[1]] and gen.generations == 4 and gen.cache_hits == 5
  fresh = InstructionGenerator(lm, EXEMPLARS, max_new_tokens=8)
  assert fresh.generate(zs[:4]) == first  # same seed and z -> same instructions
  assert len(set(first)) > 1  # z steers the generator


def test_degenerate_instructions_are_named():
  assert degenerate("  ...  ", EXEMPLARS) == "empty"
  assert degenerate("Input: cat Output: c", EXEMPLARS).startswith("contains the exemplar")
  assert degenerate("Dog.", EXEMPLARS) == "copies an exemplar"
  assert degenerate("write the first letter", EXEMPLARS) is None


def test_instruction_scores_come_from_the_llm_answers_and_are_cached(tiny):
  _, lm = tiny
  llm = LocalChatLLM(lm)
  examples = rule_task("first_word_letter", 4).examples
  scorer = InstructionScorer(llm, examples, "contains", exemplars=EXEMPLARS, max_tokens=4)
  instructions = ["write the first letter", "say one word", "", "write the first letter"]
  scores = scorer.score(instructions)
  assert scorer.queries == 2 * len(examples)  # the empty one and the repeat cost nothing
  assert scores[2].degenerate == "empty" and scores[2].mean == 0.0
  assert scores[3] is scores[0]
  answers = llm.complete([execution_messages("say one word", x) for x, _ in examples], 4)
  np.testing.assert_array_equal(scores[1].per_example,
                                [contains(a.text, y) for a, (_, y) in zip(answers, examples)])
  scorer.score(instructions[:2])
  assert scorer.queries == 2 * len(examples)


def test_a_chat_model_is_asked_in_its_template_and_its_answer_started(tmp_path):
  """On a chat-tuned model (a tiny Llama GGUF with a ChatML template) the demonstrations
  and the question are the user's turn and the answer starts "The instruction was to";
  the instruction is the continuation up to its first line break."""
  lm = load_causal_lm(write_llama_gguf(str(tmp_path / "tiny.gguf")))
  prompt = exemplar_prompt(EXEMPLARS, lm)
  assert prompt == ("<|im_start|>user\nInput: cat\nOutput: c\n\nInput: dog\nOutput: d\n\n"
                    "What was the instruction?<|im_end|>\n<|im_start|>assistant\n"
                    "The instruction was to")
  gen = InstructionGenerator(lm, EXEMPLARS, intrinsic_dim=3, num_soft_tokens=2,
                             max_new_tokens=6)
  zs = np.asarray([[0.0, 0.0, 0.0], [0.5, -0.5, 1.0]], np.float32)
  ids = lm.tokenizer.encode(prompt).ids
  embeds = np.concatenate([np.asarray(gen.soft_tokens(zs)),
                           np.repeat(np.asarray(lm.embed(np.asarray([ids]))), 2, 0)], 1)
  rows = np.asarray(lm.generate(embeds, np.ones(embeds.shape[:2], bool), 6))
  expected = [lm.tokenizer.decode(lm.cut(r.tolist())[0]).strip().split("\n", 1)[0].strip()
              for r in rows]
  assert gen.generate(zs) == expected
  # A base model (no template) continues the plain demonstrations.
  assert exemplar_prompt(EXEMPLARS) == "Input: cat\nOutput: c\n\nInput: dog\nOutput: d\n\n" \
      "The instruction was to"
