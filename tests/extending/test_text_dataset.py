"""A user's text dataset: registered from test code, run end to end, no drug-review field.

The dataset carries its own class names and verbalizer template; the config names it
and nothing else about it (``data.task`` and ``data.min_train_reviews`` belong to the
bundled drug reviews and are deleted from the config here).
"""

import numpy as np
import pytest

from configs.drug_minilm import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import DATASETS, register_text_dataset
from fedbbpt_jax.tasks.text.build import verbalizer_texts
from fedbbpt_jax.train import run, validate_config
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

TOPICS = {
    "sports": ["the team won the match", "a late goal decided the game",
               "the runner broke the record", "fans cheered the striker"],
    "cooking": ["bake the bread for an hour", "stir the soup with a spoon",
                "the cake needs more sugar", "slice the onions thinly"],
    "weather": ["heavy rain is expected tonight", "the morning was cold and foggy",
                "a storm is moving north", "sunny skies all weekend"],
}
NAMES = tuple(TOPICS)


def texts(repeat):
  rows = [(f"{sentence} {'again ' * k}".strip(), label)
          for label, name in enumerate(NAMES) for sentence in TOPICS[name]
          for k in range(repeat)]
  return [t for t, _ in rows], [y for _, y in rows]


@pytest.fixture
def topics():
  register_text_dataset("topics", train=texts(4), test=texts(1), class_names=NAMES,
                        verbalizer_template="a sentence about {}")
  yield "topics"
  DATASETS.unregister("topics")


def user_config(name, **overrides):
  config = tiny(get_config("smoke"))
  del config.data["task"], config.data["min_train_reviews"]  # the drug reviews' own
  return with_overrides(config, data__name=name, data__num_clients=3, data__test_examples=0,
                        train__rounds=2, **overrides)


def test_a_user_text_dataset_runs_end_to_end_without_drug_review_fields(topics, tmp_path):
  config = user_config(topics)
  validate_config(config)
  summary = run(config, str(tmp_path), log=lambda s: None)
  assert summary["class_names"] == list(NAMES)
  assert summary["test_examples"] == 12 and summary["test_split"].startswith("topics test")
  histograms = np.asarray(summary["label_histograms"])
  assert histograms.shape == (3, 3) and histograms.sum() == 48
  assert len(summary["final_per_class_recall"]) == 3
  assert np.isfinite(summary["final_loss"])


def test_the_datasets_own_verbalizer_template_applies_unless_the_config_sets_one(topics):
  task = get_config("smoke").task
  assert task.verbalizer_template == ""
  assert verbalizer_texts(task, NAMES, "a sentence about {}") == [
      "a sentence about sports", "a sentence about cooking", "a sentence about weather"]
  task.verbalizer_template = "news on {}"
  assert verbalizer_texts(task, NAMES, "a sentence about {}")[0] == "news on sports"
  loaded = DATASETS.get(topics)(None)
  assert loaded.verbalizer_template == "a sentence about {}"
  assert DATASETS.get("drug_reviews")(get_config("smoke").data).verbalizer_template == (
      "a review of a drug for {}")


def test_a_drug_review_field_set_for_another_dataset_is_refused(topics):
  config = with_overrides(tiny(get_config("smoke")), data__name=topics,
                          data__task="sentiment")
  with pytest.raises(ConfigError, match=r"config.data.task='sentiment' .*read only when "
                                        r"config.data.name='drug_reviews'"):
    validate_config(config)


@pytest.mark.parametrize("kwargs, message", [
    (dict(class_names=("a",)), "at least 2 distinct names"),
    (dict(verbalizer_template="no slot"), "one '{}'"),
    (dict(train=(["x", "y"], [0, 5])), r"labels must lie in \[0, 3\)"),
    (dict(test=(["x", ""], [0, 1])), "texts must be non-empty strings"),
])
def test_bad_text_datasets_are_refused_when_registered(kwargs, message):
  args = dict(train=texts(1), test=texts(1), class_names=NAMES)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    register_text_dataset("bad_topics", **args)
  assert "bad_topics" not in DATASETS
