"""Validates an experiment config at load time, naming the faulty field.

The checks every run shares live here (seed, partition, budget, the served-model
connection, the estimator's direction count and schedule, client, server, algorithm,
loop, baselines); the task family checks its own fields
(``FAMILIES[config.task.family].check``), every registered algorithm the values of the
fields it owns (``ALGORITHMS[name].check_fields``, e.g. ``config.decentralized``) and
the chosen algorithm what it needs (``ALGORITHMS[config.server.algorithm].check``).
Nothing is loaded or built: validating a config takes about a millisecond.
Allowed names always come from the registries, so a user's registered entry is valid.

**Settings the run would ignore are refused.** Some fields are read only when a choice
selects them: ``server.dp.*`` by ``server.aggregator='dp_gaussian'``, ``server.robust.*``
by the robust aggregator that uses each one, ``decentralized.*`` by
``server.algorithm='dfedsam'`` (and the graph options by the topology that uses each
one), ``server.pooled_clock`` by ``'centralized'``, ``attack.fraction``/``scale``/
``noise_std`` by the ``attack.kind`` that uses them, ``data.dirichlet_alpha``/
``shards_per_client`` by ``data.partition``, ``server.aggregator`` itself by the
algorithms that apply it (``aggregators_of``) and ``client.upload='seeds'`` by those that
replay seeds. The rule: a field counts as *set* when its value differs from its
default, and the default is the value the shared block of ``configs/common.py`` gives
it (``common.dp()``, ``common.robust()``, ``common.decentralized()``, ``common.attack()``,
``common.partition()``, ``common.server()``; the library holds the same values, declared
by each reader with ``reads={field: default}`` when it is registered, and a test pins
them to ``configs/common.py``). A set field that the chosen entry does not read is
refused with a ``ConfigError`` naming the field, its value, what reads it and what to
set to apply it (``core.fields.refuse_unread``), e.g. ``config.server.dp.
noise_multiplier=2.0 would be ignored: it is read only when config.server.aggregator=
'dp_gaussian' (this run: 'weighted_mean'); set config.server.aggregator='dp_gaussian' to
apply it, or leave it at its default 1.0``. A value at its default is never refused: a
config file may carry every block whichever choice it makes. Which algorithms and
aggregators work together is computed from the registries (``algorithms_applying``),
so a message's suggestion is never refused by a later check. The range checks run
first, so a bad value is told its range whether or not it would be read.
"""

from __future__ import annotations

import ml_collections

from fedbbpt_jax.blackbox.wire import WIRE_DTYPES
from fedbbpt_jax.core import (MAX_SEED, ConfigError, assignment, check_bool, check_choice,
                              check_registered,
                              check_number, check_string, get_field, ignored_error,
                              refuse_unread)
from fedbbpt_jax.data import NATURAL, PARTITION_READS, PARTITIONS, has_natural_partition
from fedbbpt_jax.federated import (AGGREGATORS, ALGORITHMS, CLIENT_OPTIMIZERS,
                                   SCHEDULES, SERVER_OPTIMIZERS, UPLOADS, aggregators_of,
                                   algorithms_applying, algorithms_applying_aggregator,
                                   algorithms_with_seed_uploads, server_algorithm_names)
from fedbbpt_jax.federated.aggregation.aggregators import DEFAULT_AGGREGATOR
from fedbbpt_jax.federated.algorithms.seed_uploads import check_seed_upload
from fedbbpt_jax.federated.aggregation import robust_aggregators
from fedbbpt_jax.federated.simulated_faults import faults
from fedbbpt_jax.federated.aggregation.privacy import check_dp
from fedbbpt_jax.federated.algorithms.poisson import check_sampling
from fedbbpt_jax.parallel import BACKENDS
from fedbbpt_jax.tasks import FAMILIES
from fedbbpt_jax.tasks.federated_evaluation import EVALUATIONS
from fedbbpt_jax.zo import ANTITHETIC, ESTIMATORS, EVOLUTION

__all__ = ["ConfigError", "validate_config"]


def check_chunk_size(config: ml_collections.ConfigDict) -> None:
  """``blackbox.chunk_size``: inputs per forward of a local model (0 = the whole call)."""
  if "chunk_size" not in get_field(config, "blackbox"):
    return
  check_number(config, "blackbox.chunk_size", low=0, integer=True)
  if get_field(config, "blackbox.chunk_size") and config.blackbox.get("url", ""):
    raise ConfigError(f"config.blackbox.chunk_size={get_field(config, 'blackbox.chunk_size')} "
                      "splits the calls of a local model; a served model "
                      f"(config.blackbox.url={config.blackbox.url!r}) batches on its side: "
                      "set config.blackbox.chunk_size=0")


def check_remote_blackbox(config: ml_collections.ConfigDict) -> None:
  """Checks the fields of the served-model black box (``blackbox.url`` and friends).

  Configs without a ``blackbox.url`` field use the local surrogate and skip them.
  """
  if "url" not in get_field(config, "blackbox"):
    return
  url = get_field(config, "blackbox.url")
  if not isinstance(url, str) or (url and not url.startswith(("http://", "https://"))):
    raise ConfigError(f"config.blackbox.url={url!r} must be '' (local surrogate) or an "
                      "http:// or https:// URL such as 'http://127.0.0.1:8000'")
  env_var = get_field(config, "blackbox.api_key_env")
  if not isinstance(env_var, str) or (env_var and not env_var.replace("_", "a").isalnum()):
    raise ConfigError(f"config.blackbox.api_key_env={env_var!r} must name an environment "
                      "variable (letters, digits, '_'); put the key there, not in the config")
  if "wire_dtype" in get_field(config, "blackbox"):  # pixels; token ids always go as int32
    check_choice(config, "blackbox.wire_dtype", WIRE_DTYPES)
  check_number(config, "blackbox.max_attempts", low=1, integer=True)
  check_number(config, "blackbox.backoff_seconds", low=0)
  check_number(config, "blackbox.timeout_seconds", low=0, low_inclusive=False)
  check_number(config, "blackbox.max_concurrency", low=1, integer=True)


def check_partition(config: ml_collections.ConfigDict) -> None:
  """The client-partition fields every task family shares."""
  check_choice(config, "data.partition", PARTITIONS)
  check_number(config, "data.num_clients", low=1, integer=True)
  check_number(config, "data.dirichlet_alpha", low=0, low_inclusive=False)
  check_number(config, "data.shards_per_client", low=1, integer=True)
  check_number(config, "data.examples_per_client", low=0, integer=True)
  check_number(config, "data.test_examples", low=0, integer=True)
  check_number(config, "data.partition_seed", low=0, integer=True)
  refuse_unread(config, "data.partition", PARTITION_READS)
  check_natural_partition(config)


def check_natural_partition(config: ml_collections.ConfigDict) -> None:
  """``data.partition='natural'`` exactly when ``data.name`` is a dataset with its own
  clients (``register_dataset(..., natural_partition=True)``)."""
  partition, name = get_field(config, "data.partition"), config.data.get("name", "")
  natural = has_natural_partition(name)
  if natural and partition != NATURAL:
    raise ConfigError(f"config.data.partition={partition!r}: config.data.name={name!r} holds "
                      f"its clients apart (one each, e.g. a folder per client) and is split by "
                      f"them only: set config.data.partition={NATURAL!r}")
  if partition == NATURAL and not natural:
    raise ConfigError(f"config.data.partition={NATURAL!r} takes the dataset's own clients, and "
                      f"config.data.name={name!r} has none (it is not registered with "
                      "natural_partition=True, e.g. 'client_folders'): choose one of "
                      f"{[p for p in PARTITIONS if p != NATURAL]}")


def check_estimator(config: ml_collections.ConfigDict) -> None:
  """The estimator is registered; its direction count and schedule are in range.

  Which estimators a prompt can use (continuous, categorical) is the family's check.
  """
  check_registered(config, "zo.estimator", ESTIMATORS)
  estimator = get_field(config, "zo.estimator")
  check_number(config, "zo.num_directions", low=1, integer=True)
  tags = ESTIMATORS.tags(estimator)
  if EVOLUTION in tags:
    check_number(config, "zo.num_directions", low=2, integer=True)
    directions = get_field(config, "zo.num_directions")
    if ANTITHETIC in tags and directions % 2:
      raise ConfigError(f"config.zo.num_directions={directions} must be even for "
                        f"config.zo.estimator={estimator!r} (antithetic pairs)")
  zo = get_field(config, "zo")
  if "sigma" in zo:
    check_number(config, "zo.sigma", low=0, low_inclusive=False)
  if "sigma_decay" in zo:
    check_number(config, "zo.sigma_decay", low=0)
  if "momentum" in zo:
    check_number(config, "zo.momentum", low=0, high=1)


def check_client(config: ml_collections.ConfigDict) -> None:
  """The client optimizer, step-size schedule, local steps and minibatch."""
  check_registered(config, "client.optimizer", CLIENT_OPTIMIZERS)
  if "weight_decay" in get_field(config, "client"):
    check_number(config, "client.weight_decay", low=0)
  check_number(config, "client.lr", low=0, low_inclusive=False)
  check_number(config, "client.lr_offset", low=0)
  check_number(config, "client.lr_decay", low=0)
  if "schedule" in get_field(config, "client"):
    check_choice(config, "client.schedule", SCHEDULES)
  check_number(config, "client.local_steps", low=1, integer=True)
  check_number(config, "client.batch_size", low=1, integer=True)
  if "upload" in get_field(config, "client"):
    check_choice(config, "client.upload", UPLOADS)
    check_upload(config)


def check_upload(config: ml_collections.ConfigDict) -> None:
  """``client.upload='seeds'`` needs an algorithm and an estimator that can replay it."""
  if get_field(config, "client.upload") != "seeds":
    return
  algorithm = get_field(config, "server.algorithm")
  if algorithm not in algorithms_with_seed_uploads():
    raise ConfigError(f"config.client.upload='seeds' is not supported by config.server."
                      f"algorithm={algorithm!r} (its server cannot replay seed uploads); set "
                      f"{assignment('server.algorithm', algorithms_with_seed_uploads())} to "
                      "apply it, or use config.client.upload='dense'")
  check_seed_upload(get_field(config, "zo.estimator"))


def check_aggregator_applies(config: ml_collections.ConfigDict) -> None:
  """``server.aggregator`` is one the algorithm applies (``federated.aggregators_of``);
  the message names the algorithms that apply it (``federated.algorithms_applying``)."""
  aggregator = get_field(config, "server").get("aggregator", DEFAULT_AGGREGATOR)
  algorithm = get_field(config, "server.algorithm")
  applied = aggregators_of(algorithm)
  if aggregator in applied:
    return
  users = algorithms_applying(aggregator)
  fix = (f"set {assignment('server.algorithm', users)} to apply {aggregator!r}" if users
         else f"no registered algorithm applies {aggregator!r}")
  if algorithm not in algorithms_applying_aggregator():
    raise ignored_error("server.aggregator", aggregator, DEFAULT_AGGREGATOR,
                        f"config.server.algorithm={algorithm!r} does not combine uploads with "
                        "server.aggregator", fix)
  role = ALGORITHMS.get(algorithm).aggregator_role
  raise ConfigError(f"config.server.aggregator={aggregator!r}: config.server.algorithm="
                    f"{algorithm!r} {role} with one of {list(applied)}; {fix}")


def refuse_unread_server_fields(config: ml_collections.ConfigDict) -> None:
  """Fields only another algorithm (``decentralized.*``, ``server.pooled_clock``) or
  another aggregator (``server.dp.*``, ``server.robust.*``) reads, set (module docstring)."""
  refuse_unread(config, "server.algorithm", ALGORITHMS.all_reads())
  if "aggregator" not in get_field(config, "server"):
    return
  algorithm = get_field(config, "server.algorithm")

  def fix(readers: list[str]) -> str:
    usable = [name for name in readers if name in aggregators_of(algorithm)]
    if usable:
      return f"set {assignment('server.aggregator', usable)} to apply it"
    users = sorted({a for name in readers for a in algorithms_applying(name)})
    return (f"set {assignment('server.aggregator', readers)} and "
            f"{assignment('server.algorithm', users)} to apply it")

  refuse_unread(config, "server.aggregator", AGGREGATORS.all_reads(), fix)


def check_server(config: ml_collections.ConfigDict) -> None:
  """The algorithm (and what it needs), server optimizer, aggregator (its ``server.robust``
  and ``server.dp`` blocks), cohort size, the simulated faults (``attack``,
  ``server.dropout``), and the fields the chosen algorithm and aggregator would ignore."""
  check_choice(config, "server.algorithm", server_algorithm_names(),
               hint=ALGORITHMS.how_to_register(get_field(config, "server.algorithm")))
  check_registered(config, "server.optimizer", SERVER_OPTIMIZERS)
  if "aggregator" in get_field(config, "server"):
    check_registered(config, "server.aggregator", AGGREGATORS)
  check_number(config, "server.lr", low=0, low_inclusive=False)
  check_number(config, "server.momentum", low=0, high=1)
  num_clients = get_field(config, "data.num_clients")
  check_number(config, "server.cohort_size", low=0, high=num_clients, integer=True,
               hint=f"config.data.num_clients={num_clients}; 0 = every client")
  check_aggregator_applies(config)
  check_dp(config)
  check_sampling(config)
  robust_aggregators.check(config, get_field(config, "server.cohort_size")
                           or get_field(config, "data.num_clients"))
  faults.check(config)
  for name in ALGORITHMS.names():  # every algorithm's own fields, whichever one runs
    ALGORITHMS.get(name).check_fields(config)
  ALGORITHMS.get(get_field(config, "server.algorithm")).check(config)
  refuse_unread_server_fields(config)


def check_loop(config: ml_collections.ConfigDict) -> None:
  """The round loop, the cohort backend and the baselines' switches."""
  check_number(config, "train.rounds", low=1, integer=True)
  check_number(config, "train.eval_every", low=1, integer=True)
  check_number(config, "train.eval_batch_size", low=1, integer=True)
  if "evaluation" in get_field(config, "train"):
    check_choice(config, "train.evaluation", EVALUATIONS,
                 hint="where the global model is tested: the server's test set, the "
                      "clients' local test splits, or both")
  if "init_noise" in get_field(config, "train"):
    check_number(config, "train.init_noise", low=0, high=0.1,
                 hint="relative noise on the initial prompt parameters")
  check_choice(config, "parallel.backend", BACKENDS)
  if "cpu_devices" in get_field(config, "parallel"):
    check_number(config, "parallel.cpu_devices", low=0, integer=True)
  if "cohort_chunk" in get_field(config, "parallel"):
    check_number(config, "parallel.cohort_chunk", low=0, integer=True,
                 hint="clients per vmapped chunk of a Poisson cohort; 0 = automatic")
  if "baselines" in config:
    for name in get_field(config, "baselines"):
      check_bool(config, f"baselines.{name}")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first invalid field of ``config``."""
  check_number(config, "seed", low=0, high=MAX_SEED, integer=True)
  check_string(config, "task.family", non_empty=True)
  check_registered(config, "task.family", FAMILIES)
  check_partition(config)
  check_number(config, "blackbox.budget_examples", low=0, integer=True)
  check_remote_blackbox(config)
  check_chunk_size(config)
  FAMILIES.get(get_field(config, "task.family")).check(config)
  check_estimator(config)
  check_client(config)
  check_server(config)
  check_loop(config)
