"""Seed downloads: a node rebuilds the global model from the rounds' seed uploads.

With seed-and-scalar uploads (``client.upload='seeds'``) every round's server step is a
deterministic function of the server state before it and of what the cohort uploaded
(keys, losses, example counts) plus which members reported. So with the run config's
``download='seeds'``, a node that holds the server state of round ``s`` needs only the
uploads of rounds ``s .. r-1`` to rebuild the state of round ``r``: it replays each
round with the server's own step (``strategy.make_server_step``: ``receive`` replays the
uploads to deltas, then the aggregator and the server optimizer). FedKSeed / DeComFL
do the same; the download stops growing with the generator.

* The server keeps every round's ``RoundRecord`` (in memory: after a restart, each node
  first gets the whole state again) and, per partition, the round of the state its node
  last confirmed. It sends ``HISTORY`` (the records since then) when it has them, else
  ``STATE`` (the whole ``ServerState``: parameters, server optimizer state, round).
* The node keeps the state it last rebuilt in its run directory, replays, checks the
  parameters' checksum the server sent and trains from the rebuilt global model. A
  mismatch is an error reply (the member counts as dropped for that round) and the node
  deletes the state it kept, which either it or the replay got wrong; the server, which
  saw no upload, sends the whole state next time.

Not with ``server.aggregator='dp_gaussian'``: the replay would need the server's noise,
which must stay with the server.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flwr.app import ArrayRecord

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated.algorithms.algorithm import tree_bytes
from fedbbpt_jax.flower.codec import from_array_record, to_array_record

DOWNLOADS = ("dense", "seeds")
STATE_FILE = "global_state.npz"
CHECK_RTOL = 1e-5  # replayed vs server parameters (same program; other CPUs may round apart)

PyTree = Any


class RoundRecord(NamedTuple):
  """What a node needs to replay one round: the cohort's seed uploads as the server
  decoded them (key data, losses, example counts; zeros where absent), their ids, and
  which of them reported."""

  key_data: np.ndarray
  losses: np.ndarray
  num_examples: np.ndarray
  ids: np.ndarray
  reported: np.ndarray


def check_seed_download(download: str, config: Any) -> None:
  """Raises ``ConfigError`` if the run config's ``download`` cannot run with ``config``."""
  if download not in DOWNLOADS:
    raise ConfigError(f"run config 'download'={download!r} is not one of {list(DOWNLOADS)}")
  if download == "seeds":
    if config.client.get("upload", "dense") != "seeds":
      raise ConfigError("run config 'download'='seeds' replays the rounds' seed uploads: it "
                        f"needs config.client.upload='seeds' (not "
                        f"{config.client.get('upload', 'dense')!r})")
    if config.server.get("aggregator", "weighted_mean") == "dp_gaussian":
      raise ConfigError("run config 'download'='seeds' cannot run with config.server."
                        "aggregator='dp_gaussian': replaying a round needs the server's noise; "
                        "use download='dense'")


def record_of(uploads: Any, ids: np.ndarray, reported: np.ndarray) -> RoundRecord:
  """The ``RoundRecord`` of a round's stacked ``SeedUpload``s."""
  return RoundRecord(np.asarray(uploads.key_data), np.asarray(uploads.losses),
                     np.asarray(uploads.num_examples), np.asarray(ids, np.int32),
                     np.asarray(reported, bool))


def history_record(records: dict[int, RoundRecord], start: int, stop: int) -> ArrayRecord:
  """Rounds ``start .. stop-1`` as one ``ArrayRecord`` (keys ``<round>/<field>``)."""
  return to_array_record({str(q): records[q]._asdict() for q in range(start, stop)})


def history_bytes(records: dict[int, RoundRecord], start: int, stop: int) -> int:
  return sum(tree_bytes(tuple(records[q])) for q in range(start, stop))


def params_check(params: PyTree) -> float:
  """A checksum of the parameters (float64 sum of absolute values)."""
  return float(sum(np.abs(np.asarray(a, np.float64)).sum() for a in jax.tree.leaves(params)))


def replay_rounds(step: Callable, state: Any, history: ArrayRecord, start: int, stop: int,
                  upload_like: Any) -> Any:
  """``state`` (of round ``start``) advanced through the recorded rounds to ``stop``.

  ``step(state, uploads, ids, reported)`` is the server's step; ``upload_like`` one
  client's upload structure (its metrics are not sent: zeros, they feed no state).
  """
  for q in range(start, stop):
    n = len(history[f"{q}/ids"].numpy())
    like = {"key_data": jax.ShapeDtypeStruct((n,) + upload_like.key_data.shape,
                                             upload_like.key_data.dtype),
            "losses": jax.ShapeDtypeStruct((n,) + upload_like.losses.shape,
                                           upload_like.losses.dtype),
            "num_examples": jax.ShapeDtypeStruct((n,), upload_like.num_examples.dtype),
            "ids": jax.ShapeDtypeStruct((n,), np.int32),
            "reported": jax.ShapeDtypeStruct((n,), np.bool_)}
    rec = from_array_record(ArrayRecord({k.split("/", 1)[1]: v for k, v in history.items()
                                         if k.startswith(f"{q}/")}), like,
                            what=f"the recorded round {q + 1}")
    metrics = jax.tree.map(lambda s: jnp.zeros((n,) + s.shape, s.dtype), upload_like.metrics)
    uploads = upload_like.replace(key_data=rec["key_data"], losses=rec["losses"],
                                  num_examples=rec["num_examples"], metrics=metrics)
    state, _ = step(state, uploads, jnp.asarray(rec["ids"]), jnp.asarray(rec["reported"]))
  return state


def save_state(directory: str, state: Any) -> None:
  """Keeps ``state`` (a ``ServerState``) in ``directory`` (written atomically)."""
  record = to_array_record(state)
  tmp = os.path.join(directory, STATE_FILE + ".tmp.npz")
  np.savez(tmp, **{k.replace("/", "|"): v.numpy() for k, v in record.items()})
  os.replace(tmp, os.path.join(directory, STATE_FILE))


def discard_state(directory: str) -> str:
  """Deletes the state ``save_state`` kept in ``directory`` (if any); returns its path."""
  path = os.path.join(directory, STATE_FILE)
  if os.path.exists(path):
    os.remove(path)
  return path


def load_state(directory: str, like: Any) -> Any | None:
  """The state ``save_state`` kept in ``directory``, or None."""
  path = os.path.join(directory, STATE_FILE)
  if not os.path.exists(path):
    return None
  from flwr.app import Array  # pylint: disable=import-outside-toplevel
  with np.load(path) as f:
    record = ArrayRecord({k.replace("|", "/"): Array(f[k]) for k in f.files})
  return from_array_record(record, like, what=f"the node's kept state {path}")
