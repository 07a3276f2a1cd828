"""Communication graphs and their mixing matrices for decentralized (server-free) gossip.

In decentralized FL (DFedAvg, DFedSAM, DFedSAM-MGS) there is no server: after local
training every client replaces its model by a weighted average of its own and its graph
neighbours' models. Stacking the m client models as the rows of ``Z``, one gossip step is
``Z <- W Z`` with a mixing matrix ``W`` that is non-zero only on the graph's edges and
diagonal; DFedSAM-MGS takes ``Q`` such steps per round.

With ``W`` symmetric and doubly stochastic the clients' mean is preserved and the spread
around it contracts: ``||Z^(Q) - 1 z_bar^T||_F <= lambda^Q ||Z^(0) - 1 z_bar^T||_F`` with
``lambda = ||W - 11^T/m||_2`` (the mixing rate; ``1 - lambda`` is the spectral gap). The
Metropolis-Hastings weights ``w_il = 1/(1 + max(d_i, d_l))`` give such a ``W`` for any
undirected graph.

Graph builders return a symmetric boolean adjacency ``[m, m]`` with a False diagonal and
are pure functions of their arguments (random graphs take a ``seed``). ``TOPOLOGIES`` maps
a name to ``build(num_clients, options) -> adjacency``; users add graphs with
``TOPOLOGIES.register(name, build)`` (tag it ``'random'`` to allow ``time_varying``; declare
the ``config.decentralized`` options it reads with ``reads={'decentralized.degree': 4}``:
DFedSAM refuses an option set that the chosen topology does not read).
``mixing_matrix`` turns a name into ``W``; ``gossip`` applies ``W`` to a pytree whose leaves
carry a leading client axis.

Example:
    >>> w = mixing_matrix("torus", 16, {})          # 4x4 torus, all weights 1/5
    >>> round(mixing_rate(w), 4)                      # 0.6
    >>> stacked = gossip(w, stacked, steps=2)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.core import Registry

PyTree = Any
Builder = Callable[[int, Any], np.ndarray]

TOPOLOGIES: Registry[Builder] = Registry(
    "topology", home="fedbbpt_jax.federated.topology.TOPOLOGIES")
WEIGHTS = ("metropolis_hastings", "sample_weighted")
TOPOLOGY_FIELD = "decentralized.topology"
MAX_TRIES = 100  # redraws of a random graph before giving up


# ---------------------------------------------------------------------------------------------
# Graph helpers.


def _from_offsets(m: int, offsets: list[int]) -> np.ndarray:
  """Circulant graph: i ~ i + o (mod m) for every offset o, symmetrised."""
  adj = np.zeros((m, m), bool)
  idx = np.arange(m)
  for o in offsets:
    adj[idx, (idx + o) % m] = True
  return _finish(adj)


def _finish(adj: np.ndarray) -> np.ndarray:
  """Symmetric, boolean, False on the diagonal."""
  adj = np.asarray(adj, bool)
  adj = adj | adj.T
  np.fill_diagonal(adj, False)
  return adj


def _check_adjacency(adjacency: Any) -> np.ndarray:
  adj = np.asarray(adjacency)
  if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
    raise ValueError(f"an adjacency matrix must be square [m, m], got shape {adj.shape}")
  adj = adj.astype(bool)
  if not np.array_equal(adj, adj.T):
    raise ValueError("the adjacency matrix must be symmetric (an undirected graph)")
  if adj.diagonal().any():
    raise ValueError("the adjacency matrix must be False on the diagonal (no self-loops)")
  return adj


def _check_count(name: str, value: int, low: int) -> int:
  if isinstance(value, bool) or int(value) != value or value < low:
    raise ValueError(f"{name}={value!r} must be an integer >= {low}")
  return int(value)


def is_connected(adjacency: np.ndarray) -> bool:
  """Whether every node is reachable from node 0 (True for zero or one node)."""
  adj = np.asarray(adjacency, bool)
  m = adj.shape[0]
  if m <= 1:
    return True
  reached = np.zeros(m, bool)
  reached[0] = True
  while True:
    grown = reached | adj[reached].any(axis=0)
    if np.array_equal(grown, reached):
      return bool(reached.all())
    reached = grown


# ---------------------------------------------------------------------------------------------
# Graph builders.


def ring(m: int) -> np.ndarray:
  """Cycle 0 - 1 - ... - (m-1) - 0 (a single edge for m = 2)."""
  m = _check_count("m", m, 1)
  return _from_offsets(m, [1])


def torus(rows: int, cols: int) -> np.ndarray:
  """2-D torus ``rows x cols``: node ``r*cols + c`` has 4 wrap-around neighbours.

  Raises:
    ValueError: ``rows`` or ``cols`` below 3 (the 4 neighbours would not be distinct).
  """
  rows, cols = _check_count("rows", rows, 3), _check_count("cols", cols, 3)
  return _lattice(rows, cols, wrap=True)


def grid(rows: int, cols: int) -> np.ndarray:
  """2-D grid ``rows x cols`` without wrap-around (degrees 2 to 4)."""
  rows, cols = _check_count("rows", rows, 1), _check_count("cols", cols, 1)
  return _lattice(rows, cols, wrap=False)


def _lattice(rows: int, cols: int, wrap: bool) -> np.ndarray:
  adj = np.zeros((rows * cols, rows * cols), bool)
  node = np.arange(rows * cols).reshape(rows, cols)
  if wrap:
    pairs = [(node, np.roll(node, -1, axis=0)), (node, np.roll(node, -1, axis=1))]
  else:
    pairs = [(node[:-1, :], node[1:, :]), (node[:, :-1], node[:, 1:])]
  for a, b in pairs:
    adj[a.ravel(), b.ravel()] = True
  return _finish(adj)


def exponential(m: int) -> np.ndarray:
  """Undirected exponential graph: i ~ i +- 2^k (mod m) for k = 0 .. ceil(log2 m) - 1."""
  m = _check_count("m", m, 1)
  return _from_offsets(m, [2 ** k for k in range(math.ceil(math.log2(m)))])


def fully_connected(m: int) -> np.ndarray:
  """Complete graph on ``m`` nodes."""
  m = _check_count("m", m, 1)
  return _finish(np.ones((m, m), bool))


def k_regular(m: int, k: int, seed: int) -> np.ndarray:
  """A random connected ``k``-regular graph (pairing model, redrawn until connected).

  The ``m*k`` stubs are paired at random; pairs that would form a self-loop or a repeated
  edge go back into the pool and are re-paired (the Steger-Wormald variant of the pairing
  model, as networkx's ``random_regular_graph``), which stays fast for large ``k``.

  Raises:
    ValueError: no connected ``k``-regular graph on ``m`` nodes exists, or none was drawn
      in ``MAX_TRIES`` attempts.
  """
  m, k = _check_count("m", m, 1), _check_count("k", k, 0)
  if k >= m or (m * k) % 2:
    raise ValueError(f"k_regular(m={m}, k={k}): a k-regular graph needs k < m and m*k even")
  if (m > 2 and k < 2) or (m == 2 and k != 1):
    raise ValueError(f"k_regular(m={m}, k={k}): a {k}-regular graph on {m} nodes is never "
                     "connected; use k >= 2")
  rng = np.random.default_rng(seed)
  for _ in range(MAX_TRIES):
    adj = _pairing(m, k, rng)
    if adj is not None and is_connected(adj):
      return adj
  raise ValueError(f"k_regular(m={m}, k={k}): no simple connected graph in {MAX_TRIES} draws")


def _pairing(m: int, k: int, rng: np.random.Generator) -> np.ndarray | None:
  """One pairing-model draw; None when the leftover stubs cannot be paired simply."""
  adj = np.zeros((m, m), bool)
  stubs = np.repeat(np.arange(m), k)
  while stubs.size:
    stubs = rng.permutation(stubs)
    leftover = []
    for u, v in stubs.reshape(-1, 2):
      if u == v or adj[u, v]:
        leftover += [u, v]
      else:
        adj[u, v] = adj[v, u] = True
    stubs = np.asarray(leftover, int)
    nodes = np.unique(stubs)
    # Some two distinct leftover nodes must still be joinable, otherwise restart.
    if stubs.size and not (~adj[np.ix_(nodes, nodes)] & ~np.eye(nodes.size, dtype=bool)).any():
      return None
  return adj


def erdos_renyi(m: int, p: float, seed: int) -> np.ndarray:
  """Erdos-Renyi G(m, p), redrawn until connected.

  Raises:
    ValueError: ``p`` outside [0, 1], or no connected draw in ``MAX_TRIES`` attempts.
  """
  m = _check_count("m", m, 1)
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"erdos_renyi(m={m}, p={p}): the edge probability p must be in [0, 1]")
  rng = np.random.default_rng(seed)
  upper = np.triu(np.ones((m, m), bool), k=1)
  for _ in range(MAX_TRIES):
    adj = _finish((rng.random((m, m)) < p) & upper)
    if is_connected(adj):
      return adj
  raise ValueError(f"erdos_renyi(m={m}, p={p}): no connected graph in {MAX_TRIES} draws; "
                   f"p is too small to connect {m} nodes (connectivity needs p well above "
                   f"ln(m)/m = {math.log(max(m, 2)) / m:.3f})")


# ---------------------------------------------------------------------------------------------
# Mixing matrices and their spectra.


def metropolis_hastings(adjacency: np.ndarray) -> np.ndarray:
  """Metropolis-Hastings weights: symmetric, doubly stochastic, positive on edges + diagonal.

  ``w_il = 1/(1 + max(d_i, d_l))`` on edges and ``w_ii = 1 - sum_{l != i} w_il``. For a
  complete graph this is ``11^T/m``, returned exactly.

  Args:
    adjacency: symmetric boolean ``[m, m]``, False on the diagonal.

  Returns:
    ``W``, float64 ``[m, m]``.
  """
  adj = _check_adjacency(adjacency)
  m = adj.shape[0]
  if adj.sum() == m * (m - 1):
    return np.full((m, m), 1.0 / m)
  deg = adj.sum(axis=1)
  w = np.where(adj, 1.0 / (1.0 + np.maximum(deg[:, None], deg[None, :])), 0.0)
  w[np.diag_indices(m)] = 1.0 - w.sum(axis=1)
  return w


def sample_weighted(adjacency: np.ndarray, num_examples: Any) -> np.ndarray:
  """Row-stochastic mixing weighted by example counts (as some public DFedSAM code does).

  Row ``i`` averages client ``i`` and its neighbours, each weighted by its example count:
  ``w_il = n_l / sum_{j in N(i) + {i}} n_j``. Neither symmetric nor doubly stochastic in
  general, so the clients' mean is not preserved and ``mixing_rate`` may exceed 1.

  Args:
    adjacency: symmetric boolean ``[m, m]``, False on the diagonal.
    num_examples: non-negative example counts ``[m]``.

  Returns:
    ``W``, float64 ``[m, m]`` with rows summing to 1.

  Raises:
    ValueError: wrong shape, a negative count, or a neighbourhood without examples.
  """
  adj = _check_adjacency(adjacency)
  m = adj.shape[0]
  n = np.asarray(num_examples, np.float64)
  if n.shape != (m,):
    raise ValueError(f"num_examples must have shape [{m}], got {n.shape}")
  if (n < 0).any():
    raise ValueError(f"num_examples must be non-negative, got {n.tolist()}")
  closed = adj | np.eye(m, dtype=bool)
  raw = np.where(closed, n[None, :], 0.0)
  totals = raw.sum(axis=1)
  if (totals <= 0).any():
    empty = np.flatnonzero(totals <= 0).tolist()
    raise ValueError(f"clients {empty} and their neighbours hold no examples")
  return raw / totals[:, None]


def mixing_rate(w: np.ndarray) -> float:
  """``lambda = ||W - 11^T/m||_2``: the consensus error contracts by it per gossip step."""
  w = np.asarray(w, np.float64)
  m = w.shape[0]
  return float(np.linalg.norm(w - np.full((m, m), 1.0 / m), 2))


def spectral_gap(w: np.ndarray) -> float:
  """``1 - mixing_rate(W)``: positive for a connected graph with MH weights; 1 when complete."""
  return 1.0 - mixing_rate(w)


# ---------------------------------------------------------------------------------------------
# The registry: name -> build(num_clients, options) -> adjacency.


def _option(options: Any, name: str, default: Any) -> Any:
  """``options[name]``, or ``default`` when absent or None (dicts, ConfigDicts, objects)."""
  if options is None:
    return default
  getter = getattr(options, "get", None)
  value = getter(name, None) if callable(getter) else getattr(options, name, None)
  return default if value is None else value


class _Overridden:
  """``options`` with some fields replaced (leaves the caller's options untouched)."""

  def __init__(self, options: Any, **values: Any):
    self._options, self._values = options, values

  def get(self, name: str, default: Any = None) -> Any:
    if name in self._values:
      return self._values[name]
    return _option(self._options, name, default)


def _square_factors(num_clients: int, low: int) -> tuple[int, int] | None:
  """``(rows, cols)`` with ``rows * cols = num_clients``, ``low <= rows <= cols``, most square."""
  for rows in range(math.isqrt(num_clients), low - 1, -1):
    if num_clients % rows == 0 and num_clients // rows >= low:
      return rows, num_clients // rows
  return None


def _shape(kind: str, num_clients: int, options: Any, low: int) -> tuple[int, int]:
  rows, cols = _option(options, "rows", None), _option(options, "cols", None)
  if rows is None and cols is None:
    factors = _square_factors(num_clients, low)
    if factors is None:
      raise ValueError(f"a {kind} needs num_clients = rows * cols with rows, cols >= {low}; "
                       f"num_clients={num_clients} has no such factorisation (set "
                       f"decentralized.rows and decentralized.cols, or change num_clients)")
    return factors
  if rows is None:
    rows = num_clients // cols
  if cols is None:
    cols = num_clients // rows
  if rows * cols != num_clients:
    raise ValueError(f"a {kind} of rows={rows} x cols={cols} does not have "
                     f"num_clients={num_clients} nodes")
  return rows, cols


def _seed(options: Any) -> int:
  return int(_option(options, "seed", 0))


# The config fields (``config.decentralized``) each topology reads, with their defaults;
# DFedSAM refuses one the chosen topology does not read when it is set.
_SHAPE_FIELDS = {"decentralized.rows": 0, "decentralized.cols": 0}
_SEED_FIELD = {"decentralized.topology_seed": 0}


@TOPOLOGIES.register("ring")
def _build_ring(num_clients: int, options: Any) -> np.ndarray:
  del options
  return ring(num_clients)


@TOPOLOGIES.register("torus", reads=_SHAPE_FIELDS)
def _build_torus(num_clients: int, options: Any) -> np.ndarray:
  return torus(*_shape("torus", num_clients, options, low=3))


@TOPOLOGIES.register("grid", reads=_SHAPE_FIELDS)
def _build_grid(num_clients: int, options: Any) -> np.ndarray:
  return grid(*_shape("grid", num_clients, options, low=1))


@TOPOLOGIES.register("exponential")
def _build_exponential(num_clients: int, options: Any) -> np.ndarray:
  del options
  return exponential(num_clients)


@TOPOLOGIES.register("k_regular", tags=("random",),
                     reads={"decentralized.degree": 4, **_SEED_FIELD})
def _build_k_regular(num_clients: int, options: Any) -> np.ndarray:
  return k_regular(num_clients, int(_option(options, "degree", 4)), _seed(options))


@TOPOLOGIES.register("erdos_renyi", tags=("random",),
                     reads={"decentralized.edge_probability": 0.5, **_SEED_FIELD})
def _build_erdos_renyi(num_clients: int, options: Any) -> np.ndarray:
  return erdos_renyi(num_clients, float(_option(options, "edge_probability", 0.5)),
                     _seed(options))


@TOPOLOGIES.register("fully_connected")
def _build_fully_connected(num_clients: int, options: Any) -> np.ndarray:
  del options
  return fully_connected(num_clients)


def mixing_matrix(name: str, num_clients: int, options: Any = None,
                  weights: str = "metropolis_hastings",
                  num_examples: Any = None) -> np.ndarray:
  """The mixing matrix ``W`` [num_clients, num_clients] (float64) of a registered topology.

  Args:
    name: a ``TOPOLOGIES`` name (``config.decentralized.topology``).
    num_clients: number of clients m.
    options: dict-like with optional ``rows``, ``cols``, ``degree``, ``edge_probability``,
      ``seed`` (None: all defaults).
    weights: ``'metropolis_hastings'`` (symmetric, doubly stochastic; exactly ``11^T/m``
      for ``fully_connected``) or ``'sample_weighted'`` (row-stochastic only).
    num_examples: example counts ``[m]``; needed for ``'sample_weighted'``.

  Raises:
    UnknownNameError: ``name`` is not registered (names ``decentralized.topology``).
    ValueError: unknown ``weights``, missing ``num_examples``, or a bad graph option.
  """
  build = TOPOLOGIES.get(name, TOPOLOGY_FIELD)
  num_clients = _check_count("num_clients", num_clients, 1)
  adjacency = _check_adjacency(build(num_clients, options))
  if adjacency.shape[0] != num_clients:
    raise ValueError(f"topology {name!r} built {adjacency.shape[0]} nodes for "
                     f"num_clients={num_clients}")
  if weights == "metropolis_hastings":
    return metropolis_hastings(adjacency)
  if weights == "sample_weighted":
    if num_examples is None:
      raise ValueError("weights='sample_weighted' needs num_examples (the clients' counts)")
    return sample_weighted(adjacency, num_examples)
  raise ValueError(f"weights={weights!r} is not one of {list(WEIGHTS)}")


def time_varying(name: str, num_clients: int, options: Any, key_seed: int, round_idx: int,
                 *, weights: str = "metropolis_hastings",
                 num_examples: Any = None) -> np.ndarray:
  """``W`` of a random topology redrawn for round ``round_idx``.

  The graph's seed is derived from ``SeedSequence([key_seed, round_idx])`` (``options.seed``
  is ignored), so the same (seed, round) always gives the same graph and a resumed run
  redraws exactly the graphs of the original one.

  Raises:
    ValueError: ``name`` is not tagged ``'random'`` (a fixed graph does not vary), or a
      negative seed or round.
  """
  TOPOLOGIES.get(name, TOPOLOGY_FIELD)
  if name not in TOPOLOGIES.names("random"):
    raise ValueError(f"time_varying needs a random topology, one of "
                     f"{list(TOPOLOGIES.names('random'))}; {name!r} is fixed")
  key_seed, round_idx = _check_count("key_seed", key_seed, 0), _check_count(
      "round_idx", round_idx, 0)
  seed = int(np.random.SeedSequence([key_seed, round_idx]).generate_state(1, np.uint64)[0])
  return mixing_matrix(name, num_clients, _Overridden(options, seed=seed), weights=weights,
                       num_examples=num_examples)


# ---------------------------------------------------------------------------------------------
# Gossip on stacked client pytrees.


def gossip(w: Any, stacked: PyTree, steps: int = 1) -> PyTree:
  """``Z <- W Z`` applied ``steps`` times to every leaf ``[m, ...]`` of ``stacked``.

  Args:
    w: mixing matrix ``[m, m]`` (used as float32).
    stacked: pytree whose leaves have a leading client axis of size m.
    steps: number of gossip steps Q (0 returns ``stacked`` unchanged).

  Returns:
    The mixed pytree; each leaf keeps its dtype.
  """
  steps = _check_count("steps", steps, 0)
  w = jnp.asarray(w, jnp.float32)
  m = w.shape[0]
  for leaf in jax.tree.leaves(stacked):
    if leaf.shape[:1] != (m,):
      raise ValueError(f"gossip: a leaf of shape {leaf.shape} has no leading client axis {m}")

  def mix(x: jnp.ndarray) -> jnp.ndarray:
    for _ in range(steps):
      x = jnp.tensordot(w, x, axes=1).astype(x.dtype)
    return x

  return jax.tree.map(mix, stacked)


def consensus_distance(stacked: PyTree) -> jnp.ndarray:
  """``(1/m) sum_i ||x_i - x_bar||^2`` summed over all leaves (a float32 scalar)."""
  total = jnp.zeros((), jnp.float32)
  for leaf in jax.tree.leaves(stacked):
    x = jnp.asarray(leaf, jnp.float32)
    dev = x - jnp.mean(x, axis=0, keepdims=True)
    total = total + jnp.sum(dev ** 2) / x.shape[0]
  return total
