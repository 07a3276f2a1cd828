"""Every field of the instruction config is checked before anything loads: out-of-range
values are refused with a message naming the field, value and range."""

import math

import ml_collections
import pytest

from configs.instruction import get_config
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.tasks.instruction.config_check import check_instruction_config
from fedbbpt_jax.tasks.instruction.experiment import run_instruction


def leaves(config, prefix=""):
  for key, value in config.items():
    name = f"{prefix}{key}"
    if hasattr(value, "items"):
      yield from leaves(value, name + ".")
    else:
      yield name, value


def with_field(config, field, value):
  """A copy of ``config`` with ``field`` set to ``value`` of any type (as a config built
  in Python, or read from JSON, may hold; ConfigDict's own overrides keep types)."""
  config = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
  *path, last = field.split(".")
  node = config
  for part in path:
    node = node[part]
  node[last] = value
  return config


@pytest.mark.parametrize("mode", ["", "smoke", "table"])
def test_every_mode_passes_and_every_numeric_field_refuses_nan_and_strings(mode):
  check_instruction_config(get_config(mode))
  numeric = [(f, v) for f, v in leaves(get_config(mode))
             if isinstance(v, (int, float)) and not isinstance(v, bool)]
  assert len(numeric) >= 20
  for field, value in numeric:
    for bad in (math.nan, "3"):
      c = with_field(get_config(mode), field, bad)
      with pytest.raises(ConfigError, match=rf"config\.{field.replace('.', chr(92) + '.')}="):
        check_instruction_config(c)


@pytest.mark.parametrize("field, value, message", [
    ("method", "grid", "config.method='grid' is not one of ['bo', 'federated', 'local_only']"),
    ("task.name", "antonyms", "config.task.name='antonyms' is not one of"),
    ("task.scorer", "bleu",
     "config.task.scorer='bleu' is not one of ['contains', 'exact_match', 'f1']"),
    ("task.num_clients", 0, "config.task.num_clients=0 must be >= 1"),
    ("task.demos", 6, "config.task.demos=6 must be <= 5 (demonstrations are taken from the "
                      "exemplars)"),
    ("blackbox.url", "localhost:1", "config.blackbox.url='localhost:1' must be '' (the local "
                                    "model_path) or an http://"),
    ("generator.intrinsic_dim", 2.5, "config.generator.intrinsic_dim=2.5 must be an integer >= 1"),
    ("blackbox.budget_tokens", -1, "config.blackbox.budget_tokens=-1 must be >= 0 (0 = unlimited)"),
    ("zo.estimator", "bdpl", "config.zo.estimator='bdpl' is not one of"),
    ("zo.sigma", 0.0, "config.zo.sigma=0.0 must be > 0"),
    ("bo.initial", 1, "config.bo.initial=1 must be >= 2 (the GP needs two points)"),
    ("server.aggregator", "", "config.server.aggregator='' must be a non-empty string"),
])
def test_out_of_range_fields_are_named(field, value, message, tmp_path):
  c = with_field(get_config(), field, value)
  with pytest.raises(ConfigError) as error:
    run_instruction(c, str(tmp_path))  # refused before any model is loaded
  assert message in str(error.value)
  assert not (tmp_path / "summary.json").exists()
