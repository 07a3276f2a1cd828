"""Every field of every experiment config is range-checked at load time.

``CASES`` is a table of bad values, one per row, each with the exact fragment of
the ``ConfigError`` (field, value, allowed range or set) it must raise; it spans
every config section and the task families, the settings a run would ignore (a field
set while the choice that reads it is off: ``tests/train/test_ignored_settings.py``
tests that rule), and the README's table of
allowed values (docs/privacy_robustness/config_ranges.md) is generated from it.
The exhaustive tests then set EVERY leaf of every config mode to a value no run can
use (NaN or inf for a float, -10**9 or 0.5 for an integer, 1 for a bool, 3 for a
string, an unknown name for a string with a fixed set of values) and require a
``ConfigError`` that names that very field.
"""

import builtins
import math
import re

import ml_collections
import pytest

from configs import drug_minilm, fmnist_effnet, glue_roberta, instruction
from fedbbpt_jax.core import MAX_SEED, ConfigError, check_number, range_text
from fedbbpt_jax.train import validate_config

CONFIGS = {"image": fmnist_effnet, "text": drug_minilm, "glue": glue_roberta,
           "instruction": instruction}
MODES = {
    "image": ("", "smoke", "dfedsam"),
    "text": ("", "sentiment", "smoke", "soft", "soft_smoke", "dfedsam"),
    "glue": ("", "smoke") + glue_roberta.GLUE_TASK_NAMES,
    "instruction": ("", "smoke"),
}
ALL_MODES = [(family, mode) for family, modes in MODES.items() for mode in modes]

# String fields whose content is free (a path, a text, an environment variable's
# name): any string is legitimate there, so "an unknown name" is no error. Their TYPE
# is still checked (3 is refused) by test_every_leaf_of_the_wrong_type_is_refused.
FREE_TEXT = {
    "data.source_dir": "a folder the dataset loader reads ('' = none)",
    "data.tfds_dir": "a TFDS data folder ('' = the default one)",
    "blackbox.model_dir": "a local model folder (its contents are checked by the GLUE builder)",
    "blackbox.api_key_env": "the name of any environment variable (letters, digits, '_')",
    "prompt.init_text": "any non-empty text (its word embeddings start the soft prompt)",
    "task.json_path": "an instruction-induction JSON file ('' = the rule task task.name)",
    "generator.model_path": "a bundled model name, a .gguf file or a model folder (checked "
                            "when loaded)",
    "llm.model": "the model id an OpenAI-compatible endpoint serves",
    "llm.api_key_env": "the name of any environment variable (letters, digits, '_')",
    "llm.model_path": "a bundled model name, a .gguf file or a model folder (checked when "
                      "loaded)",
}
# Numeric fields for which NaN/inf or -10**9 would be legitimate: none. Every float
# must be finite and every integer (counts, sizes, seeds) is >= 0. Keep it that way:
# a field added here must say why such a value can run.
NUMERIC_ALLOWED: dict[str, str] = {}

# (family, mode, field, bad value, exact message fragment)
CASES = [
    # data
    ("image", "smoke", "data.num_clients", 0, "config.data.num_clients=0 must be >= 1"),
    ("image", "", "data.dirichlet_alpha", math.nan,
     "config.data.dirichlet_alpha=nan must be a finite number > 0"),
    ("image", "smoke", "data.partition_seed", -1, "config.data.partition_seed=-1 must be >= 0"),
    ("image", "smoke", "data.source_dir", 3,
     "config.data.source_dir=3 must be a string: a folder path, or ''"),
    ("text", "smoke", "data.min_train_reviews", 0,
     "config.data.min_train_reviews=0 must be >= 1"),
    ("glue", "smoke", "data.k_shot", 2.5, "config.data.k_shot=2.5 must be an integer >= 1"),
    ("glue", "smoke", "data.test_split", "test",
     "config.data.test_split='test' is not one of ['', 'validation', 'validation_matched', "
     "'validation_mismatched']"),
    # blackbox
    ("image", "smoke", "blackbox.budget_examples", -1,
     "config.blackbox.budget_examples=-1 must be >= 0"),
    ("image", "smoke", "blackbox.timeout_seconds", math.inf,
     "config.blackbox.timeout_seconds=inf must be a finite number > 0"),
    ("text", "smoke", "blackbox.backoff_seconds", math.nan,
     "config.blackbox.backoff_seconds=nan must be a finite number >= 0"),
    ("text", "smoke", "blackbox.max_length", 3, "config.blackbox.max_length=3 must be >= 4"),
    ("glue", "smoke", "blackbox.max_length", 1024,
     "config.blackbox.max_length=1024 must be <= 512"),
    # task
    ("image", "smoke", "task.background", math.nan,
     "config.task.background=nan must be a finite number in [0.0, 1.0]"),
    ("image", "smoke", "task.loss_temperature", -math.inf,
     "config.task.loss_temperature=-inf must be a finite number >= 0.0"),
    ("text", "smoke", "task.temperature", 0.0, "config.task.temperature=0.0 must be > 0"),
    # prompt
    ("image", "smoke", "prompt.epsilon", math.nan,
     "config.prompt.epsilon=nan must be a finite number > 0"),
    ("text", "smoke", "prompt.projection_alpha", -1.0,  # soft field, discrete mode: still checked
     "config.prompt.projection_alpha=-1.0 must be > 0"),
    ("text", "soft_smoke", "prompt.vocabulary_size", 0,  # discrete field, soft mode
     "config.prompt.vocabulary_size=0 must be >= 1"),
    ("text", "soft_smoke", "prompt.projection_seed", 2**64,
     f"config.prompt.projection_seed={2**64} must be <= {MAX_SEED}"),
    ("glue", "smoke", "prompt.vocabulary_fill", 1,
     "config.prompt.vocabulary_fill=1 must be True or False"),
    # zo
    ("image", "smoke", "zo.sigma", math.nan, "config.zo.sigma=nan must be a finite number > 0"),
    ("image", "smoke", "zo.momentum", 1.5, "config.zo.momentum=1.5 must be <= 1"),
    ("glue", "smoke", "zo.num_directions", 1, "config.zo.num_directions=1 must be >= 2"),
    # client
    ("image", "smoke", "client.lr", math.nan, "config.client.lr=nan must be a finite number > 0"),
    ("image", "smoke", "client.lr_decay", math.inf,
     "config.client.lr_decay=inf must be a finite number >= 0"),
    ("text", "smoke", "client.weight_decay", -0.1, "config.client.weight_decay=-0.1 must be >= 0"),
    ("glue", "smoke", "client.local_steps", 0, "config.client.local_steps=0 must be >= 1"),
    # server
    ("image", "smoke", "server.lr", 0.0, "config.server.lr=0.0 must be > 0"),
    ("image", "smoke", "server.momentum", math.nan,
     "config.server.momentum=nan must be a finite number in [0, 1]"),
    ("glue", "smoke", "server.cohort_size", 3,
     "config.server.cohort_size=3 must be <= 2 (config.data.num_clients=2; 0 = every client)"),
    ("image", "smoke", "server.pooled_clock", "rounds",  # centralized's field, fedbbpt run
     "config.server.pooled_clock='rounds' is not one of ['client', 'global']"),
    # server.robust / server.dp / server.dropout
    ("image", "smoke", "server.robust.trim_fraction", math.nan,
     "config.server.robust.trim_fraction=nan must be a finite number in [0, 0.5) "
     "(the fraction trimmed at EACH end)"),
    ("text", "smoke", "server.robust.norm_bound", math.inf,
     "config.server.robust.norm_bound=inf must be a finite number > 0"),
    ("image", "smoke", "server.dp.clip_norm", math.nan,
     "config.server.dp.clip_norm=nan must be a finite number > 0"),
    ("text", "smoke", "server.dp.delta", 1.0, "config.server.dp.delta=1.0 must be in (0, 1)"),
    ("glue", "smoke", "server.dp.noise_multiplier", math.nan,
     "config.server.dp.noise_multiplier=nan must be a finite number (>= 0, or -1 to calibrate "
     "it to config.server.dp.target_epsilon)"),
    ("image", "smoke", "server.dropout", math.nan,
     "config.server.dropout=nan must be a finite number in [0, 1) (the probability that a "
     "sampled client fails to report)"),
    ("text", "smoke", "server.dropout", 1.0,
     "config.server.dropout=1.0 must be in [0, 1) (the probability that a sampled client "
     "fails to report)"),
    # attack
    ("image", "smoke", "attack.fraction", math.nan,
     "config.attack.fraction=nan must be a finite number in [0, 1) (the share of malicious "
     "clients)"),
    ("text", "smoke", "attack.noise_std", math.inf,
     "config.attack.noise_std=inf must be a finite number >= 0"),
    # decentralized (checked in every config, whichever server.algorithm runs)
    ("image", "smoke", "decentralized.rho", math.nan,
     "config.decentralized.rho=nan must be a finite number >= 0"),
    ("text", "smoke", "decentralized.gossip_steps", 0,
     "config.decentralized.gossip_steps=0 must be >= 1"),
    ("glue", "smoke", "decentralized.edge_probability", 0.0,
     "config.decentralized.edge_probability=0.0 must be > 0"),
    ("image", "dfedsam", "decentralized.topology", "star",
     "config.decentralized.topology='star' is not one of ['erdos_renyi', 'exponential', "
     "'fully_connected', 'grid', 'k_regular', 'ring', 'torus']"),
    # train
    ("image", "smoke", "train.rounds", 0, "config.train.rounds=0 must be >= 1"),
    ("text", "smoke", "train.eval_batch_size", 0.5,
     "config.train.eval_batch_size=0.5 must be an integer >= 1"),
    ("image", "smoke", "seed", -1, "config.seed=-1 must be >= 0"),
    # baselines
    ("image", "smoke", "baselines.local_only", "no",
     "config.baselines.local_only='no' must be True or False"),
    # parallel
    ("image", "smoke", "parallel.backend", "pmap",
     "config.parallel.backend='pmap' is not one of ['loop', 'shard', 'vmap']"),
    ("text", "smoke", "parallel.cpu_devices", -1, "config.parallel.cpu_devices=-1 must be >= 0"),
    # Settings the run would ignore: set (not at their configs/common.py default) while the
    # choice that reads them is off (the rule: fedbbpt_jax/train/config_check.py).
    ("image", "smoke", "server.dp.noise_multiplier", 2.0,
     "config.server.dp.noise_multiplier=2.0 would be ignored: it is read only when "
     "config.server.aggregator='dp_gaussian' (this run: 'weighted_mean'); set "
     "config.server.aggregator='dp_gaussian' to apply it, or leave it at its default 1.0"),
    ("text", "smoke", "server.dp.target_epsilon", 1.0,
     "config.server.dp.target_epsilon=1.0 would be ignored: it is read only when "
     "config.server.aggregator='dp_gaussian'"),
    ("instruction", "smoke", "server.dp.clip_norm", 0.5,
     "config.server.dp.clip_norm=0.5 would be ignored: it is read only when "
     "config.server.aggregator='dp_gaussian'"),
    ("image", "smoke", "server.robust.trim_fraction", 0.2,
     "config.server.robust.trim_fraction=0.2 would be ignored: it is read only when "
     "config.server.aggregator='trimmed_mean' (this run: 'weighted_mean'); set "
     "config.server.aggregator='trimmed_mean' to apply it, or leave it at its default 0.1"),
    ("glue", "smoke", "server.robust.num_byzantine", 2,
     "config.server.robust.num_byzantine=2 would be ignored: it is read only when "
     "config.server.aggregator is one of ['krum', 'multi_krum'] (this run: 'weighted_mean')"),
    ("image", "dfedsam", "server.aggregator", "dp_gaussian",
     "config.server.aggregator='dp_gaussian': config.server.algorithm='dfedsam' mixes "
     "neighbours with one of ['weighted_mean', 'median', 'trimmed_mean']; set "
     "config.server.algorithm='fedbbpt' to apply 'dp_gaussian'"),
    ("image", "smoke", "server.pooled_clock", "global",
     "config.server.pooled_clock='global' would be ignored: it is read only when "
     "config.server.algorithm='centralized' (this run: 'fedbbpt'); set "
     "config.server.algorithm='centralized' to apply it, or leave it at its default 'client'"),
    ("image", "smoke", "decentralized.topology", "torus",
     "config.decentralized.topology='torus' would be ignored: it is read only when "
     "config.server.algorithm='dfedsam' (this run: 'fedbbpt'); set "
     "config.server.algorithm='dfedsam' to apply it, or leave it at its default 'ring'"),
    ("text", "dfedsam", "decentralized.degree", 6,
     "config.decentralized.degree=6 would be ignored: it is read only when "
     "config.decentralized.topology='k_regular' (this run: 'ring'); set "
     "config.decentralized.topology='k_regular' to apply it, or leave it at its default 4"),
    ("image", "dfedsam", "decentralized.edge_probability", 0.3,
     "config.decentralized.edge_probability=0.3 would be ignored: it is read only when "
     "config.decentralized.topology='erdos_renyi' (this run: 'torus')"),
    ("image", "smoke", "attack.scale", 5.0,
     "config.attack.scale=5.0 would be ignored: it is read only when config.attack.kind is "
     "one of ['scaled', 'sign_flip'] (this run: 'none'); set config.attack.kind to one of "
     "['scaled', 'sign_flip'] to apply it, or leave it at its default 1.0"),
    ("text", "smoke", "attack.fraction", 0.4,
     "config.attack.fraction=0.4 would be ignored: it is read only when config.attack.kind "
     "is one of ['gaussian', 'label_flip', 'scaled', 'sign_flip'] (this run: 'none')"),
    ("image", "smoke", "data.shards_per_client", 3,
     "config.data.shards_per_client=3 would be ignored: it is read only when "
     "config.data.partition='shards' (this run: 'dirichlet'); set "
     "config.data.partition='shards' to apply it, or leave it at its default 2"),
    ("instruction", "", "data.partition", "dirichlet",
     "config.data.partition='dirichlet' is not one of ['iid']"),
    ("instruction", "", "data.train_examples", 0, "config.data.train_examples=0 must be >= 1"),
    ("instruction", "", "task.name", "antonyms", "config.task.name='antonyms' is not one of"),
    ("instruction", "", "task.demos", 9,
     "config.task.demos=9 must be <= 5 (demonstrations are taken from the exemplars)"),
    ("instruction", "smoke", "generator.intrinsic_dim", 0,
     "config.generator.intrinsic_dim=0 must be >= 1"),
    ("instruction", "", "llm.url", "localhost:8100",
     "config.llm.url='localhost:8100' must be '' (the local model_path) or an http://"),
    ("instruction", "", "llm.budget_tokens", -5,
     "config.llm.budget_tokens=-5 must be >= 0 (0 = unlimited)"),
    ("instruction", "", "zo.estimator", "bdpl", "config.zo.estimator='bdpl' is not one of"),
]


def loose(family: str, mode: str) -> ml_collections.ConfigDict:
  """The config of ``family:mode`` without type safety, so that a test may put a value of
  any type anywhere (as a user's own config file can)."""
  return ml_collections.ConfigDict(CONFIGS[family].get_config(mode).to_dict(), type_safe=False)


def with_value(config: ml_collections.ConfigDict, field: str, value) -> ml_collections.ConfigDict:
  *parents, leaf = field.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value
  return config


def leaves(config, prefix: str = ""):
  """``(dotted field, value)`` of every leaf of ``config``."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from leaves(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


def names_field(message: str, field: str) -> bool:
  """Whether ``message`` names ``config.<field>`` (not merely a longer field it prefixes)."""
  return re.search(r"config\." + re.escape(field) + r"(?![A-Za-z0-9_])", message) is not None


def refusal(family: str, mode: str, field: str, value) -> str | None:
  """``None`` if ``field = value`` is refused naming the field, else what happened."""
  try:
    validate_config(with_value(loose(family, mode), field, value))
  except ConfigError as e:
    return None if names_field(str(e), field) else f"{field}={value!r}: other field: {e}"
  except Exception as e:  # pylint: disable=broad-except
    return f"{field}={value!r}: {type(e).__name__}: {e}"
  return f"{field}={value!r}: accepted"


def test_the_table_spans_every_section_and_family():
  sections = {field.split(".")[0] for _, _, field, _, _ in CASES}
  assert {"data", "blackbox", "task", "prompt", "zo", "client", "server", "attack",
          "decentralized", "train", "baselines", "parallel"} <= sections
  fields = {field for _, _, field, _, _ in CASES}
  assert any(f.startswith("server.robust.") for f in fields)
  assert any(f.startswith("server.dp.") for f in fields)
  assert "server.dropout" in fields
  assert {family for family, *_ in CASES} == set(CONFIGS)
  assert len(CASES) >= 25


@pytest.mark.parametrize("family,mode,field,value,message", CASES,
                         ids=[f"{c[0]}-{c[2]}={c[3]!r}" for c in CASES])
def test_a_bad_value_is_refused_with_field_value_and_range(family, mode, field, value, message):
  validate_config(CONFIGS[family].get_config(mode))  # the default is valid ...
  with pytest.raises(ConfigError) as e:  # ... and the one bad field is not
    validate_config(with_value(loose(family, mode), field, value))
  assert message in str(e.value)


@pytest.mark.parametrize("family,mode", ALL_MODES)
def test_every_default_config_validates(family, mode):
  config = CONFIGS[family].get_config(mode)
  validate_config(config)
  validate_config(loose(family, mode))  # the same values without type safety


@pytest.mark.parametrize("family,mode", ALL_MODES)
def test_every_numeric_leaf_refuses_nan_inf_and_minus_a_billion(family, mode):
  failures = []
  for field, value in leaves(CONFIGS[family].get_config(mode)):
    if field in NUMERIC_ALLOWED or isinstance(value, bool):
      continue
    if isinstance(value, float):
      bad = (math.nan, math.inf, -math.inf)
    elif isinstance(value, int):
      bad = (-10**9, 0.5)  # 0.5: a float where an integer is needed
    else:
      continue
    failures += [f for f in (refusal(family, mode, field, b) for b in bad) if f]
  assert failures == []


@pytest.mark.parametrize("family,mode", ALL_MODES)
def test_every_leaf_of_the_wrong_type_is_refused(family, mode):
  failures = []
  for field, value in leaves(CONFIGS[family].get_config(mode)):
    if isinstance(value, bool):
      bad = (1, "yes")
    elif isinstance(value, (int, float)):
      bad = ("7",)
    elif isinstance(value, str):
      bad = (3, None)
    elif isinstance(value, tuple):
      bad = (3,)
    else:
      raise AssertionError(f"{field}={value!r}: a leaf type this test does not know")
    failures += [f for f in (refusal(family, mode, field, b) for b in bad) if f]
  assert failures == []


@pytest.mark.parametrize("family,mode", ALL_MODES)
def test_every_string_with_a_fixed_set_of_values_refuses_an_unknown_one(family, mode):
  failures = []
  for field, value in leaves(CONFIGS[family].get_config(mode)):
    if isinstance(value, str) and field not in FREE_TEXT:
      failure = refusal(family, mode, field, "no_such_value")
      if failure:
        failures.append(failure)
  assert failures == []


def test_the_free_text_fields_exist_and_take_any_string():
  for family, mode in ALL_MODES:
    fields = dict(leaves(CONFIGS[family].get_config(mode)))
    for field in FREE_TEXT:
      if field in fields:
        validate_config(with_value(loose(family, mode), field, "Any_value_2"))
  every = set().union(*(dict(leaves(CONFIGS[f].get_config(m))) for f, m in ALL_MODES))
  assert set(FREE_TEXT) <= every


def test_check_number_refuses_non_finite_values_and_states_the_range():
  c = ml_collections.ConfigDict({"a": {"x": 0.5}}, type_safe=False)
  check_number(c, "a.x", low=0, high=1, high_inclusive=False)
  for value, text in ((math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")):
    c.a.x = value
    with pytest.raises(ConfigError) as e:
      check_number(c, "a.x", low=0, high=1, high_inclusive=False)
    assert str(e.value) == f"config.a.x={text} must be a finite number in [0, 1)"
  with pytest.raises(ConfigError) as e:
    check_number(c, "a.x")  # no range: still refused
  assert str(e.value) == "config.a.x=-inf must be a finite number"
  c.a.x = 1.0
  with pytest.raises(ConfigError) as e:
    check_number(c, "a.x", low=0, high=1, high_inclusive=False, hint="a probability")
  assert str(e.value) == "config.a.x=1.0 must be in [0, 1) (a probability)"
  c.a.x = 2.0
  with pytest.raises(ConfigError) as e:
    check_number(c, "a.x", low=1, integer=True)
  assert str(e.value) == "config.a.x=2.0 must be an integer >= 1"
  c.a.big = 10**400  # an int too large for a float is still an int, compared exactly
  check_number(c, "a.big", low=0, integer=True)
  assert range_text(0, 1, False, False) == "in (0, 1)"
  assert range_text(high=1, high_inclusive=False) == "< 1"


def test_validation_reads_no_file_and_needs_no_data(monkeypatch):
  """Validation checks values only: no dataset, model or folder is opened."""

  def no_files(*args, **kwargs):
    raise AssertionError(f"validate_config opened {args[:1]}")

  configs = []
  for family, mode in ALL_MODES:
    config = CONFIGS[family].get_config(mode)
    for field in ("data.source_dir", "data.tfds_dir", "blackbox.model_dir"):
      if field in dict(leaves(config)):
        with_value(config, field, "/nonexistent/fedbbpt_config_ranges")
    configs.append(config)
  monkeypatch.setattr(builtins, "open", no_files)
  for config in configs:
    validate_config(config)


def test_a_user_algorithm_checks_its_own_fields_whichever_algorithm_runs():
  from fedbbpt_jax.federated import ALGORITHMS, register_algorithm

  def check_fields(config):
    if "my_weight" in config.server:
      check_number(config, "server.my_weight", low=0, high=1)

  register_algorithm("my_algorithm", build=lambda ctx: None, check_fields=check_fields)
  try:
    config = loose("image", "smoke")  # runs fedbbpt, not my_algorithm
    validate_config(with_value(config, "server.my_weight", 0.25))
    with pytest.raises(ConfigError) as e:
      validate_config(with_value(config, "server.my_weight", math.nan))
    assert str(e.value) == "config.server.my_weight=nan must be a finite number in [0, 1]"
  finally:
    ALGORITHMS.unregister("my_algorithm")
  validate_config(config)  # unregistered: its field is no longer read
