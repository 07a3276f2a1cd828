"""A refused command line or config ends in ONE line ``error: <message>`` on stderr and
exit status 2, without a traceback, in every launcher that takes ``--config``
(``experiments/config_cli.py``): an unknown field names its block's fields; a
``ConfigError`` of the run's validation is printed as it is. The refusals come before
anything is loaded or written, so each command is quick."""

import os
import subprocess
import sys

import pytest

from configs import drug_minilm, fmnist_effnet
from experiments.config_cli import USAGE_ERROR, config_arguments, unknown_field

pytestmark = pytest.mark.slow  # make test-quick leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def launch(module, *args):
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120, check=False)


def assert_one_line_refusal(out, message):
  assert (out.returncode, out.stderr, out.stdout) == (USAGE_ERROR, f"error: {message}\n", "")
  assert "Traceback" not in out.stderr


def test_train_refuses_an_unknown_field_naming_its_block_fields(tmp_path):
  out = launch("train", "--config=configs/fmnist_effnet.py:smoke", f"--workdir={tmp_path / 'w'}",
               "--config.client.learning_rate=0.1")
  fields = sorted(fmnist_effnet.get_config("smoke").client.keys())
  assert "lr" in fields and "learning_rate" not in fields
  assert_one_line_refusal(out, "config.client.learning_rate=0.1: learning_rate is not a field "
                               f"of config.client; its fields are {fields}")
  assert not os.path.exists(tmp_path / "w")


def test_train_prints_a_validation_refusal_as_one_line(tmp_path):
  out = launch("train", "--config=configs/fmnist_effnet.py:smoke", f"--workdir={tmp_path / 'w'}",
               "--config.server.cohort_size=10")
  assert_one_line_refusal(out, "config.server.cohort_size=10 must be <= 3 "
                               "(config.data.num_clients=3; 0 = every client)")
  assert not os.path.exists(tmp_path / "w")


def test_text_seeds_refuses_an_ignored_dp_setting_in_one_line(tmp_path):
  out = launch("text_seeds", "--config=configs/drug_minilm.py:smoke",
               f"--workdir={tmp_path / 'w'}", "--seeds=0", "--config.server.dp.target_epsilon=1.0")
  assert_one_line_refusal(out, "config.server.dp.target_epsilon=1.0 would be ignored: it is "
                               "read only when config.server.aggregator='dp_gaussian' (this run: "
                               "'weighted_mean'); set config.server.aggregator='dp_gaussian' to "
                               "apply it, or leave it at its default 0.0")
  assert not os.path.exists(tmp_path / "w" / "seed_0")


def test_an_unknown_aggregator_is_refused_in_one_line(tmp_path):
  out = launch("train", "--config=configs/instruction.py:smoke", f"--workdir={tmp_path / 'w'}",
               "--config.server.aggregator=averaged")
  assert_one_line_refusal(out, "config.server.aggregator='averaged' is not one of "
                               "['dp_gaussian', 'krum', 'median', "
                               "'multi_krum', 'norm_bounded_mean', 'trimmed_mean', "
                               "'weighted_mean'], or register your own in a module of yours "
                               "(from fedbbpt_jax.federated import AGGREGATORS; "
                               "AGGREGATORS.register('averaged', ...)) and load it with "
                               "--imports=your.module (see docs/extending.md)")
  assert not os.path.exists(tmp_path / "w")


def test_the_override_forms_of_config_flags_are_read():
  argv = ["prog", "--config", "configs/x.py:smoke", "--config.a.b=1", "-config.c", "2",
          "--noconfig.d", "--config.e", "--workdir=w", "--", "--config.f=3"]
  assert config_arguments(argv) == ("configs/x.py:smoke",
                                    [("a.b", "1"), ("c", "2"), ("d", None), ("e", None)])
  assert config_arguments(["prog", "--config=y.py"]) == ("y.py", [])


@pytest.mark.parametrize("dotted,why", [
    ("client.lr", None),
    ("server.dp.clip_norm", None),
    ("server.dp.clip", "clip is not a field of config.server.dp; its fields are ['accountant', "
                       "'clip_norm', 'delta', 'noise_multiplier', 'sampling', 'target_epsilon']"),
    ("clients.lr", "clients is not a field of config; its fields are ['attack', 'baselines', "
                   "'blackbox', 'client', 'data', 'decentralized', 'parallel', 'prompt', 'seed', "
                   "'server', 'task', 'train', 'zo']"),
    ("client.lr.value", "config.client.lr is a value (0.2), not a block of fields"),
])
def test_unknown_field_names_where_the_path_leaves_the_config(dotted, why):
  assert unknown_field(drug_minilm.get_config("smoke"), dotted) == why
