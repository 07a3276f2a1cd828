"""A resumed instruction-family run reports the same work counters as an uninterrupted one.

``generations`` (open-LLM generations) and ``llm_requests`` (execution queries sent) are
counted by the family's own parts; the loop saves them with every checkpoint and carries
them over a resume like the query meter, and the family's caches (instructions generated,
scores asked) are saved with the checkpoint too, so the resumed process repeats no work.
Tiny GPT-2 made in the test as generator and black-box LLM (as in
``test_instruction_family.py``)."""

import shutil

import pytest

from configs.instruction import get_config
from fedbbpt_jax.train import run
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_gpt2 import write_tiny_gpt2

COUNTERS = ("generations", "llm_requests", "black_box_queries", "query_counters")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


def smoke(model, rounds):
  c = get_config("smoke")
  c.generator.model_path = c.llm.model_path = str(model)
  return with_overrides(c, train__rounds=rounds)


def test_a_run_resumed_after_round_one_counts_like_an_uninterrupted_one(model, tmp_path):
  quiet = lambda line: None
  workdir = tmp_path / "run"
  straight = run(smoke(model, 2), str(workdir), log=quiet)
  # Interrupted after round 1: round 2's checkpoint never written (its work was done).
  shutil.rmtree(workdir / "checkpoints" / "2")
  lines = []
  resumed = run(smoke(model, 2), str(workdir), log=lines.append)
  assert "resuming after round 1" in lines
  assert {k: resumed[k] for k in COUNTERS} == {k: straight[k] for k in COUNTERS}
  assert resumed["generations"] > 0 and resumed["llm_requests"] > 0
  assert resumed["instruction"] == straight["instruction"]
