"""The wire format (pytree <-> ArrayRecord with named keys) and the run/node configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated.algorithms.client import ClientOutput
from fedbbpt_jax.flower.codec import StructureMismatch, from_array_record, to_array_record
from fedbbpt_jax.flower.settings import (apply_overrides, config_from_json, config_to_json,
                                         load_config, node_settings, node_view, run_settings)

UPLOAD = ClientOutput(delta={"frame": jnp.arange(6.0).reshape(2, 3), "gate": [jnp.ones(2)]},
                      num_examples=jnp.asarray(17.0),
                      metrics={"train_loss": jnp.asarray(0.5), "steps": jnp.asarray(3)})


def test_round_trip_keeps_names_shapes_dtypes_and_values():
  record = to_array_record(UPLOAD)
  assert sorted(record.keys()) == ["delta/frame", "delta/gate/0", "metrics/steps",
                                   "metrics/train_loss", "num_examples"]
  back = from_array_record(record, jax.eval_shape(lambda: UPLOAD))
  assert isinstance(back, ClientOutput)
  for a, b in zip(jax.tree.leaves(UPLOAD), jax.tree.leaves(back), strict=True):
    assert np.asarray(a).dtype == b.dtype and np.asarray(a).shape == b.shape
    np.testing.assert_array_equal(b, np.asarray(a))


def test_typed_keys_travel_as_their_raw_data():
  record = to_array_record({"key": jax.random.key(3)})
  np.testing.assert_array_equal(record["key"].numpy(),
                                np.asarray(jax.random.key_data(jax.random.key(3))))


def test_a_structure_mismatch_names_every_offending_key():
  record = to_array_record({"delta": {"frame": np.zeros((2, 3), np.float64)},
                            "extra": np.zeros(1)})
  like = {"delta": {"frame": jax.ShapeDtypeStruct((2, 4), jnp.float32)},
          "num_examples": jax.ShapeDtypeStruct((), jnp.float32)}
  with pytest.raises(StructureMismatch) as err:
    from_array_record(record, like, what="the upload of node 7")
  text = str(err.value)
  assert text.startswith("the upload of node 7 does not match")
  assert "missing ['num_examples']" in text and "unexpected ['extra']" in text
  assert "delta/frame: float64[2, 3] where float32[2, 4] is expected" in text


def test_overrides_take_the_fields_types_and_name_bad_items():
  config = load_config("configs/fmnist_effnet.py:smoke",
                       "client.lr=0.5 train.rounds=7 client.upload=seeds baselines.zero_shot=0")
  assert (config.client.lr, config.train.rounds, config.client.upload) == (0.5, 7, "seeds")
  assert config.baselines.zero_shot is False and isinstance(config.train.rounds, int)
  for text, message in [("client.lr", "not of the form field=value"),
                        ("client.lrr=1", "field 'client.lrr' does not exist"),
                        ("nope.x=1", "no section 'nope'"),
                        ("train.rounds=2.5", "expected a int"),
                        ("baselines.zero_shot=maybe", "expected a bool")]:
    with pytest.raises(ConfigError, match=message):
      apply_overrides(config, text)


def test_the_config_survives_json_with_its_tuples():
  config = load_config("configs/drug_minilm.py:smoke")
  back = config_from_json(config_to_json(config))
  assert back.to_dict() == config.to_dict()
  assert isinstance(back.task.verbalizers, tuple)


def test_a_missing_config_file_is_named():
  with pytest.raises(ConfigError, match="no file 'configs/nope.py'"):
    load_config("configs/nope.py")


def test_run_config_is_checked():
  settings = run_settings({"workdir": "/tmp/x", "round-timeout": 30, "min-nodes": 2})
  assert (settings.round_timeout, settings.min_nodes, settings.workdir) == (30.0, 2, "/tmp/x")
  assert settings.imports == ""
  assert run_settings({"workdir": "w", "imports": "my_pkg.plugins"}).imports == "my_pkg.plugins"
  with pytest.raises(ConfigError, match="'workdir' is empty"):
    run_settings({})
  with pytest.raises(ConfigError, match="'round-timeout'=0.0"):
    run_settings({"workdir": "w", "round-timeout": 0})
  # The set-up statistics wait on their own timeout (a node's first answer starts its
  # worker), not on a short round timeout.
  assert settings.setup_timeout == 600.0
  assert run_settings({"workdir": "w", "setup-timeout": 90}).setup_timeout == 90.0
  with pytest.raises(ConfigError, match="'setup-timeout'=-1.0 must be > 0 seconds"):
    run_settings({"workdir": "w", "setup-timeout": -1})
  with pytest.raises(ConfigError, match="'min-nodes'=-1"):
    run_settings({"workdir": "w", "min-nodes": -1})


def test_node_config_is_checked_and_only_node_local_fields_change():
  with pytest.raises(ConfigError, match="no 'partition-id'"):
    node_settings({})
  with pytest.raises(ConfigError, match="'partition-id'=-1"):
    node_settings({"partition-id": -1})
  node = node_settings({"partition-id": 2, "blackbox-url": "http://127.0.0.1:9",
                        "api-key-env": "MY_KEY", "overrides": "data.source_dir=/data/fmnist",
                        "imports": "my_pkg.plugins"})
  assert node.imports == "my_pkg.plugins"
  config = node_view(load_config("configs/fmnist_effnet.py"), node)
  assert (config.blackbox.url, config.blackbox.api_key_env, config.data.source_dir) == (
      "http://127.0.0.1:9", "MY_KEY", "/data/fmnist")
  # The instruction family's provider is its black-box LLM: the node's URL and key go there.
  llm = node_view(load_config("configs/instruction.py:smoke"),
                  node_settings({"partition-id": 2, "blackbox-url": "http://127.0.0.1:9",
                                 "api-key-env": "MY_KEY"}))
  assert (llm.llm.url, llm.llm.api_key_env) == ("http://127.0.0.1:9", "MY_KEY")
  assert "url" not in llm.blackbox
  sneaky = node_settings({"partition-id": 0, "overrides": "zo.sigma=1.0"})
  with pytest.raises(ConfigError, match="node config of partition 0: 'zo.sigma' cannot be set"):
    node_view(load_config("configs/fmnist_effnet.py"), sneaky)


def test_loading_the_client_app_does_not_import_jax():
  """A SuperNode starts a ClientApp process per message: discovery must stay cheap, and
  a training message's process (``node.py``) and the ServerApp's load neither the DP
  accountant (SciPy) nor matplotlib, which a run without DP or plots never uses."""
  import subprocess
  import sys
  heavy = "('dp_accounting', 'scipy', 'matplotlib')"
  code = ("import sys, fedbbpt_jax.flower.client_app, fedbbpt_jax.flower.settings; "
          "print(sorted(m for m in ('jax', 'flax', 'optax') if m in sys.modules)); "
          "import fedbbpt_jax.flower.node, fedbbpt_jax.flower.server_app; "
          f"print(sorted(m for m in {heavy} if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout
