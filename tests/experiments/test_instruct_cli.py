"""``experiments.instruct`` (and the library run behind it) on a tiny GPT-2 made in the test
(generator and black-box LLM): every method runs and writes its summary; a second run resumes; the
server's aggregator comes from the config; missing models are named."""

import json
import subprocess
import sys

import pytest

from configs.instruction import get_config
from fedbbpt_jax.tasks.instruction.experiment import metrics_writer, run_instruction as run
from fedbbpt_jax.core import ConfigError
from tests.helpers.tiny_gpt2 import write_tiny_gpt2

pytestmark = pytest.mark.slow  # make test-quick leaves it out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.mark.parametrize("method", ["federated", "local_only", "bo"])
def test_every_method_writes_its_summary(model_dir, tmp_path, method):
  c = get_config("smoke")
  c.method = method
  c.generator.model_path = c.blackbox.model_path = model_dir
  s = run(c, str(tmp_path))
  assert json.loads((tmp_path / "summary.json").read_text()) == s
  assert s["true_definition"] == "Write the first letter of the word."
  assert 0 <= s["test_score"] <= 1 and s["test_queries"] in (0, 4, 8)
  assert len(s["train_history"]) == 2 and s["generations"] >= 1
  assert s["stopped"] is None
  if method != "bo":  # a finished search resumes to the same result without new queries
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert [r["score"] for r in rows] == s["train_history"]
    assert rows[-1]["queries"] == s["train_queries"]
    again = run(c, str(tmp_path))
    assert again["train_history"] == s["train_history"] and again["z"] == s["z"]
    assert again["train_queries"] == s["train_queries"]
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == [
        json.dumps(r) for r in rows]  # nothing repeated, nothing lost


def test_missing_models_and_unresolved_aggregators_are_named(tmp_path, model_dir):
  c = get_config("smoke")
  c.generator.model_path = ""
  with pytest.raises(ConfigError, match="config.generator.model_path is empty"):
    run(c, str(tmp_path))
  c.generator.model_path = str(tmp_path / "nowhere")
  with pytest.raises(ConfigError, match=r"config.generator.model_path=.*nowhere"):
    run(c, str(tmp_path))
  c.generator.model_path, c.blackbox.model_path = model_dir, ""
  with pytest.raises(ConfigError, match="url and config.blackbox.model_path are both empty"):
    run(c, str(tmp_path))
  c.server.aggregator = "median"
  with pytest.raises(ConfigError, match="config.server.aggregator='median' needs"):
    run(c, str(tmp_path))


def test_the_command_line_prints_the_result(model_dir, tmp_path):
  out = subprocess.run([sys.executable, "-m", "experiments.instruct",
                        "--config=configs/instruction.py:smoke", f"--workdir={tmp_path}",
                        f"--config.generator.model_path={model_dir}",
                        f"--config.blackbox.model_path={model_dir}",
                        "--config.server.aggregator=median"],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "federated on first_word_letter: instruction" in out.stdout


def test_rows_past_the_saved_round_are_dropped_on_resume(tmp_path):
  """A crash after a round's metrics row but before its state: the row is written again
  by the resumed run, not duplicated."""
  (tmp_path / "search_state.json").write_text(json.dumps({"rounds_done": 2}))
  (tmp_path / "metrics.jsonl").write_text(
      "".join(json.dumps({"round": r, "score": 0.1 * r}) + "\n" for r in (1, 2, 3)))
  write = metrics_writer(str(tmp_path))
  write({"round": 3, "score": 0.5})
  rounds = [json.loads(line)["round"] for line in
            (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rounds == [1, 2, 3]
  assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["score"] == 0.5
