"""Plugins from the command line: ``--imports`` loads a user module before the config.

The user module lives outside the package (a temporary folder on ``PYTHONPATH``) and
registers a dataset, a federated algorithm and a black box; the launcher is the real
CLI in a subprocess, as a user runs it. Nothing under ``fedbbpt_jax/`` is edited.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from fedbbpt_jax.data import COOP_BENCHMARKS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

USER_MODULE = textwrap.dedent('''
    """A user's plugins: a dataset, an algorithm (FedBBPT under another name, with a marker
    in its summary) and the tiny CNN of the tests as the black box."""
    import os
    import numpy as np
    from sklearn.datasets import load_digits

    from fedbbpt_jax.data import register_image_arrays
    from fedbbpt_jax.federated import ALGORITHMS, register_algorithm
    from tests.helpers.tiny_models import register as register_tiny_models

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    odd = digits.target % 2                      # two classes: odd and even digits
    register_image_arrays("odd_digits", train=(images[:1200], odd[:1200]),
                          test=(images[1200:], odd[1200:]))

    fedbbpt = ALGORITHMS.get("fedbbpt")

    def build(ctx):
      algorithm = fedbbpt.build(ctx)
      return algorithm._replace(name="my_fedavg",
                                summary={**algorithm.summary, "plugin": "my_fedavg"})

    register_algorithm("my_fedavg", build, fedbbpt.check)
    register_tiny_models()
    with open(os.environ["PLUGIN_MARKER"], "a") as f:  # imported exactly once
      f.write("imported\\n")
''')


def _train(tmp_path, *args):
  env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
         "PLUGIN_MARKER": str(tmp_path / "marker")}
  return subprocess.run([sys.executable, "-m", "experiments.train",
                         "--config=configs/fmnist_effnet.py:smoke",
                         f"--workdir={tmp_path / 'run'}", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def user_module(tmp_path):
  (tmp_path / "my_plugins.py").write_text(USER_MODULE)
  return "my_plugins"


@pytest.mark.slow
def test_a_user_module_registers_a_dataset_algorithm_and_model_for_the_cli(user_module,
                                                                           tmp_path):
  done = _train(tmp_path, f"--imports={user_module}", "--config.data.name=odd_digits",
                "--config.server.algorithm=my_fedavg", "--config.blackbox.model=tiny_cnn",
                "--config.train.rounds=1", "--config.data.test_examples=0")
  assert done.returncode == 0, done.stderr[-3000:]
  with open(tmp_path / "run" / "summary.json") as f:
    summary = json.load(f)
  assert summary["algorithm"] == "my_fedavg" and summary["plugin"] == "my_fedavg"
  assert summary["test_split"].startswith("odd_digits test")
  assert summary["test_examples"] == 1797 - 1200
  assert len(summary["final_per_class_recall"]) == 2
  with open(tmp_path / "run" / "config.json") as f:
    assert json.load(f)["blackbox"]["model"] == "tiny_cnn"
  assert (tmp_path / "marker").read_text() == "imported\n"


def test_without_the_import_the_name_is_refused_saying_how_to_register_it(tmp_path):
  done = _train(tmp_path, "--config.data.name=odd_digits")
  assert done.returncode == 2
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1, done.stderr
  registered = ["client_folders", *(f"coop:{name}" for name in COOP_BENCHMARKS), "digits",
                "fashion_mnist"]
  assert lines[0].startswith("error: config.data.name='odd_digits' is not one of "
                             f"{registered}, or register your own"), lines[0]
  assert ("from fedbbpt_jax.data import DATASETS; DATASETS.register('odd_digits', ..., "
          "tags=('image',))") in lines[0]
  assert "--imports=your.module" in lines[0]


@pytest.mark.parametrize("imports, message", [
    ("no_such_plugins", "error: --imports=no_such_plugins: no module 'no_such_plugins' on "
                        "the Python path"),
    ("my_plugins.py", "error: --imports=my_plugins.py: not a dotted Python module name (a "
                      "module name, not a file"),
    ("broken_plugins", "error: --imports=broken_plugins: importing it failed (ZeroDivisionError"),
])
def test_a_module_that_cannot_be_imported_is_refused_in_one_line(tmp_path, imports, message):
  (tmp_path / "broken_plugins.py").write_text("x = 1 / 0\n")
  done = _train(tmp_path, f"--imports={imports}")
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [done.stderr.strip()]
  assert done.stderr.startswith(message), done.stderr
