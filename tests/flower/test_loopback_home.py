"""``make flower-demo`` (``fedbbpt_jax.flower.loopback.main``) runs in a temporary Flower
home holding the provider's API keys; ``demo_home`` removes it, keys file, logs and node
workdirs included, when the deployment ends, also when it fails (the whole deployment is
tested in ``test_deployment.py``; here the block that ``main`` runs it in)."""

import json
import os
import stat
import tempfile

import pytest

from fedbbpt_jax.flower.loopback import demo_home


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
  """Temporary folders go under ``tmp_path``, so that anything left behind is seen."""
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  return tmp_path


def fill_like_a_deployment(home):
  os.makedirs(os.path.join(home, "node0", "checkpoints"))
  with open(os.path.join(home, "superlink.log"), "w") as f:
    f.write("SuperLink started\n")


def test_the_home_holds_the_keys_for_the_parties_only_while_the_block_runs(temp_root):
  with demo_home(2) as (home, keys_path, env):
    assert os.path.dirname(home) == str(temp_root) and keys_path == os.path.join(home,
                                                                                 "keys.json")
    with open(keys_path) as f:
      assert json.load(f) == {"server-key": None, "node-key-0": None, "node-key-1": None}
    assert stat.S_IMODE(os.stat(keys_path).st_mode) == 0o600
    assert env == {"FEDBBPT_SERVER_KEY": "server-key", "FEDBBPT_NODE_KEY_0": "node-key-0",
                   "FEDBBPT_NODE_KEY_1": "node-key-1"}
    fill_like_a_deployment(home)
  assert os.listdir(temp_root) == []


@pytest.mark.parametrize("failure", [RuntimeError("flwr run failed"), KeyboardInterrupt()],
                         ids=["run_failed", "interrupted"])
def test_the_home_and_its_keys_are_removed_when_the_deployment_fails(temp_root, failure):
  with pytest.raises(type(failure)):
    with demo_home(3) as (home, keys_path, _):
      fill_like_a_deployment(home)
      assert os.path.exists(keys_path)
      raise failure
  assert os.listdir(temp_root) == []
