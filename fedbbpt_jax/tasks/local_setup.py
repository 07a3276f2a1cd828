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

Requests and statistics are flat ``{name: numpy array}`` dicts, so they travel as they
are; a family flattens a pytree it sends (``flat_params``/``unflat_params``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, MutableMapping, Sequence

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from fedbbpt_jax.data.clients import ClientData

Stats = dict[str, np.ndarray]
Request = Mapping[str, Any]
Statistic = Callable[[ClientData, Request, MutableMapping[str, np.ndarray]], Stats]
Gather = Callable[[str, Request], list[Stats]]
EXAMPLES, CALLS = "examples", "calls"  # the black-box work a statistic reports
# Answered for every family by a deployment's nodes, before the server builds: the
# client's training-example count (``{"num_examples": n}``).
CLIENT_SIZE = "client_size"


def client_row(clients: ClientData, i: int) -> ClientData:
  """Client ``i`` of stacked ``clients``."""
  return jax.tree.map(lambda a: a[i], clients)


def local_gather(statistics: Mapping[str, Statistic], clients: ClientData) -> Gather:
  """The simulation's ``Gather``: every client of ``clients`` runs the named statistic in
  this process, each with a store of its own (kept across requests)."""
  stores: list[dict[str, np.ndarray]] = [{} for _ in range(int(clients.num_examples.shape[0]))]

  def gather(name: str, request: Request) -> list[Stats]:
    if name not in statistics:
      raise KeyError(f"no set-up statistic {name!r}; this task has {sorted(statistics)}")
    return [statistics[name](client_row(clients, i), request, store)
            for i, store in enumerate(stores)]

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
