"""Fixtures shared by the train tests."""

import pytest

from tests.helpers.glue_roberta import prepare_glue, write_tiny_roberta
from tests.train.test_glue_run import WORDS, _data


@pytest.fixture(scope="session")
def glue_assets(tmp_path_factory):
  """A tiny array_record GLUE folder and a tiny RoBERTa, built once per test session."""
  tfds_dir = prepare_glue(tmp_path_factory.mktemp("tfds"), _data())
  model_dir, _ = write_tiny_roberta(str(tmp_path_factory.mktemp("roberta")), WORDS)
  return tfds_dir, model_dir
