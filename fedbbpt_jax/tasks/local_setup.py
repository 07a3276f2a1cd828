"""Set-up statistics: what every client computes from its own data, and the server combines.

A task's set-up (the image label mapping and its iterative re-maps, the text candidate
vocabulary, a prompt's feature centre) is derived from the clients' data without the
data leaving them. A family declares it as named **statistics**::

    statistic(client, request, store) -> {name: array}

``client`` is one client's ``ClientData`` (unstacked, padded; ``num_examples`` rows are
real), ``request`` what the server asks with (``{name: array}``, e.g. the current
prompt's flat parameters), ``store`` the client's own ``{name: array}`` memory between
requests of one run (e.g. the prompted outputs a re-map's guard counts again, so it
pays no second query). A statistic reports the black-box work it paid for in its
``examples`` and ``calls`` entries.

The server asks through a ``Gather``: ``gather(name, request) -> [stats of every
client]``, in client order. In a simulation, ``local_gather`` runs the family's own
statistics for every client in this process; in a deployment each node runs the same
function on its own data and the server receives what it returns
(``flower/node_setup.py``). Simulated and deployed set-up are therefore the same
computation on the same numbers.

A statistic that reads client data ``ClientData`` does not hold (the text family's raw
training texts) is bound to its client's data: a simulation then gives ``local_gather``
one set of statistics per client, a node the set of its own client.

Requests and statistics are flat ``{name: numpy array}`` dicts, so they travel as they
are; a family flattens a pytree it sends (``flat_params``/``unflat_params``) and encodes
strings (``encode_strings``/``decode_strings``).

What the server derives is kept in set-up files in its workdir (``write_setup_file``):
read back on resume, and sent to the nodes, which read them with ``read_setup_file``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, MutableMapping, Sequence

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from fedbbpt_jax.data.clients import ClientData

Stats = dict[str, np.ndarray]
Request = Mapping[str, Any]
Statistic = Callable[[ClientData, Request, MutableMapping[str, np.ndarray]], Stats]
Gather = Callable[[str, Request], list[Stats]]
Statistics = Mapping[str, Statistic]
EXAMPLES, CALLS = "examples", "calls"  # the black-box work a statistic reports
# Answered for every family by a deployment's nodes, before the server builds: the
# client's training-example count (``{"num_examples": n}``).
CLIENT_SIZE = "client_size"


def client_row(clients: ClientData, i: int) -> ClientData:
  """Client ``i`` of stacked ``clients``."""
  return jax.tree.map(lambda a: a[i], clients)


def local_gather(statistics: Statistics | Sequence[Statistics], clients: ClientData) -> Gather:
  """The simulation's ``Gather``: every client of ``clients`` runs the named statistic in
  this process, each with a store of its own (kept across requests).

  ``statistics``: the family's statistics, or one set per client (each bound to data of
  its client that ``clients`` does not hold, e.g. its raw texts).
  """
  num_clients = int(clients.num_examples.shape[0])
  per_client = (list(statistics) if isinstance(statistics, Sequence)
                else [statistics] * num_clients)
  if len(per_client) != num_clients:
    raise ValueError(f"{len(per_client)} sets of statistics for {num_clients} clients")
  stores: list[dict[str, np.ndarray]] = [{} for _ in range(num_clients)]

  def gather(name: str, request: Request) -> list[Stats]:
    if any(name not in own for own in per_client):
      raise KeyError(f"no set-up statistic {name!r}; this task has "
                     f"{sorted(per_client[0]) if per_client else []}")
    return [own[name](client_row(clients, i), request, store)
            for i, (own, store) in enumerate(zip(per_client, stores))]

  return gather


def work(stats: Sequence[Stats]) -> tuple[int, int]:
  """``(black-box examples, calls)`` the clients' statistics cost, summed."""
  return (sum(int(s.get(EXAMPLES, 0)) for s in stats),
          sum(int(s.get(CALLS, 0)) for s in stats))


def summed(stats: Sequence[Stats], name: str) -> Any:
  """The clients' entries ``name`` added in client order (the server's only use of them)."""
  total: Any = 0
  for s in stats:
    total = total + s[name]
  return total


def flat_params(params: Any) -> np.ndarray:
  """``params`` as one flat array (a request entry)."""
  return np.asarray(ravel_pytree(params)[0])


def unflat_params(flat: Any, like: Any) -> Any:
  """The pytree of ``like``'s structure that ``flat_params`` flattened to ``flat``."""
  return ravel_pytree(like)[1](np.asarray(flat))


def encode_strings(strings: Sequence[str]) -> np.ndarray:
  """``strings`` as one uint8 array (UTF-8, newline-separated; a statistic's entry).

  Raises:
    ValueError: a string is empty or holds a newline (it would not decode back).
  """
  bad = [t for t in strings if not t or "\n" in t]
  if bad:
    raise ValueError(f"cannot encode {bad[0]!r}: strings must be non-empty, without newlines")
  return np.frombuffer("\n".join(strings).encode("utf-8"), np.uint8).copy()


def decode_strings(array: Any) -> list[str]:
  """The strings ``encode_strings`` encoded to ``array``."""
  text = np.asarray(array, np.uint8).tobytes().decode("utf-8")
  return text.split("\n") if text else []


def read_setup_file(workdir: str | None, name: str, key: str = "value") -> np.ndarray | None:
  """Entry ``key`` of the set-up file ``name`` in ``workdir`` (written by this run, or
  sent by the server to a node), or None while it does not exist."""
  path = os.path.join(workdir, name) if workdir else None
  if not path or not os.path.exists(path):
    return None
  with np.load(path) as f:
    return f[key]


def write_setup_file(workdir: str | None, name: str, value: np.ndarray) -> None:
  """Writes a set-up array atomically (read back on resume, shipped to nodes)."""
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    tmp = os.path.join(workdir, name + ".tmp.npz")
    np.savez(tmp, value=value)
    os.replace(tmp, os.path.join(workdir, name))
