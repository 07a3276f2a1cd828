"""Simulated faults of a federated round, from the config: Byzantine clients and dropouts.

``make_upload_faults(config, num_clients)`` combines the attack (``attacks.py``,
``config.attack``) and the dropouts (``dropout.py``, ``config.server.dropout``) into
the ``faults`` hook of ``algorithm.simulated_round``: the malicious clients of the
cohort corrupt their uploads, then every client fails to report with probability
``p``. Round metrics: ``attackers`` (malicious clients in the cohort), ``survivors``
(clients that reported) and ``no_survivors``.

Which algorithms take faults: those whose uploads carry a ``delta`` and an example
count (Fed-BBPT, FedOne; DFedSAM takes attacks, not dropouts). The others refuse them
in their ``check`` with ``refuse_faults``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax.numpy as jnp

from fedbbpt_jax.core import ConfigError, check_choice, check_number, get_field, refuse_unread
from fedbbpt_jax.federated.algorithms.algorithm import NO_SURVIVORS
from fedbbpt_jax.federated.simulated_faults.attacks import (ATTACK_KINDS, MODEL_POISONING,
                                                            corrupt_uploads, malicious_mask,
                                                            num_malicious, seed_malicious_ids)
from fedbbpt_jax.federated.simulated_faults.dropout import drop_clients


class FaultOptions(NamedTuple):
  """``config.attack`` and ``config.server.dropout`` with their defaults."""

  kind: str = "none"
  fraction: float = 0.0
  scale: float = 1.0
  noise_std: float = 1.0
  dropout: float = 0.0


def fault_options(config: Any) -> FaultOptions:
  """The fault fields of ``config``; defaults where an older config lacks them."""
  d = FaultOptions()
  attack = config.get("attack", None) or {}
  return FaultOptions(kind=str(attack.get("kind", d.kind)),
                      fraction=float(attack.get("fraction", d.fraction)),
                      scale=float(attack.get("scale", d.scale)),
                      noise_std=float(attack.get("noise_std", d.noise_std)),
                      dropout=float(config.server.get("dropout", d.dropout)))


def make_upload_faults(config: Any, num_clients: int) -> Callable | None:
  """``faults(uploads, ids, root_key, round_key) -> (uploads, metrics)`` or ``None`` (no fault)."""
  opts = fault_options(config)
  count = num_malicious(num_clients, opts.fraction) if opts.kind != "none" else 0
  if not count and not opts.dropout:
    return None
  corrupt = (corrupt_uploads(opts.kind, opts.scale, opts.noise_std, count, num_clients)
             if count and opts.kind in MODEL_POISONING else None)
  dropout = drop_clients(opts.dropout) if opts.dropout else None

  def faults(uploads, ids, root_key, round_key):
    metrics = {}
    if corrupt is not None:
      uploads, metrics["attackers"] = corrupt(uploads, ids, root_key, round_key)
    elif count:  # data poisoning: the uploads are honest updates on flipped labels
      metrics["attackers"] = jnp.sum(malicious_mask(root_key, num_clients, count)[ids])
    if dropout is not None:
      uploads, metrics["survivors"] = dropout(uploads, ids, round_key)
      metrics[NO_SURVIVORS] = metrics["survivors"] == 0
    return uploads, metrics

  return faults


def label_flip_ids(config: Any, num_clients: int) -> list[int]:
  """The clients whose labels are flipped at build time (empty unless ``label_flip``)."""
  opts = fault_options(config)
  if opts.kind != "label_flip":
    return []
  return seed_malicious_ids(config.seed, num_clients, opts.fraction)


def fault_summary(config: Any, num_clients: int) -> dict[str, Any]:
  """Summary entries: the attack, its malicious client ids, the dropout probability."""
  opts = fault_options(config)
  out: dict[str, Any] = {}
  if opts.kind != "none":
    out.update(attack_kind=opts.kind, attack_fraction=opts.fraction,
               malicious_clients=seed_malicious_ids(config.seed, num_clients, opts.fraction))
  if opts.dropout:
    out["dropout"] = opts.dropout
  return out


def attack_reads() -> dict[str, dict[str, Any]]:
  """``{attack.kind: {attack field it reads: default}}``: every attack reads its fraction,
  ``sign_flip``/``scaled`` their scale, ``gaussian`` its noise std."""
  d = FaultOptions()
  reads = {kind: {"attack.fraction": d.fraction} for kind in ATTACK_KINDS if kind != "none"}
  for kind in ("sign_flip", "scaled"):
    reads[kind]["attack.scale"] = d.scale
  reads["gaussian"]["attack.noise_std"] = d.noise_std
  return reads


def check(config: Any) -> None:
  """``config.attack`` and ``config.server.dropout`` (where the config has them); an
  attack field the chosen ``attack.kind`` does not read is refused when set."""
  if "dropout" in get_field(config, "server"):
    check_number(config, "server.dropout", low=0, high=1, high_inclusive=False,
                 hint="the probability that a sampled client fails to report")
  if "attack" not in config:
    return
  check_choice(config, "attack.kind", ATTACK_KINDS)
  check_number(config, "attack.fraction", low=0, high=1, high_inclusive=False,
               hint="the share of malicious clients")
  fraction = get_field(config, "attack.fraction")
  check_number(config, "attack.scale", low=0)
  check_number(config, "attack.noise_std", low=0)
  kind = get_field(config, "attack.kind")
  clients = get_field(config, "data.num_clients")
  if kind != "none" and num_malicious(clients, fraction) == 0:
    raise ConfigError(f"config.attack.kind={kind!r} with config.attack.fraction={fraction!r} "
                      f"of config.data.num_clients={clients} gives no malicious client "
                      f"(round(fraction * num_clients) = 0): raise the fraction or set "
                      "config.attack.kind='none'")
  refuse_unread(config, "attack.kind", attack_reads())


def refuse_faults(config: Any, algorithm: str, *, dropout: bool = True,
                  model_poisoning: bool = True, why: str = "") -> None:
  """``ConfigError`` if ``config`` asks ``algorithm`` for a fault it cannot take."""
  opts = fault_options(config)
  if dropout and opts.dropout:
    raise ConfigError(f"config.server.dropout={opts.dropout!r}: config.server.algorithm="
                      f"{algorithm!r} has no client dropouts{why}; set it to 0")
  if model_poisoning and opts.kind in MODEL_POISONING:
    raise ConfigError(f"config.attack.kind={opts.kind!r}: config.server.algorithm="
                      f"{algorithm!r} takes no model-poisoning attack{why} (choose 'none' or "
                      "'label_flip')")
