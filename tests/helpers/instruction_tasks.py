"""Instruction-induction tasks written by the tests for the tiny GPT-2
(``tests/helpers/tiny_gpt2.py``), in the JSON format ``task.json_path`` reads."""

import json
import os

WORDS = ["cat", "dog", "apple", "banana", "red", "blue", "one", "two", "three"] * 2


def write_task(folder, name: str, outputs: list[str]) -> str:
  """``<folder>/<name>.json``: the ``WORDS`` as inputs, ``outputs`` cycled as answers."""
  examples = {str(i + 1): {"input": x, "output": outputs[i % len(outputs)]}
              for i, x in enumerate(WORDS)}
  path = os.path.join(str(folder), f"{name}.json")
  with open(path, "w") as f:
    json.dump({"examples": examples}, f)
  return path


def write_words_task(folder) -> str:
  """Outputs the tiny GPT-2 does say under some instructions (it scores 0 on every rule
  task), so losses vary with z."""
  return write_task(folder, "words", ["system:", "numbers"])
