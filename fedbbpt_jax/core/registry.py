"""A name -> entry table that users extend from their own code.

Every pluggable part of the library (estimators, prompt generators, black boxes,
datasets, task families, federated algorithms, aggregators, client and server
optimizers) is looked up in a ``Registry`` by the name a config gives. Config
validation takes the allowed names from the registry, so a user's entry is valid
the moment it is registered.

An entry may also declare the config fields only it and its kin read, with their defaults
(``reads``): a run whose chosen entry does not read such a field refuses it when it
is set to another value (``core.fields.refuse_unread``, the rule of
``train/config_check.py``).

Example:
    >>> AGGREGATORS = Registry("aggregator")
    >>> @AGGREGATORS.register("weighted_mean")
    ... def weighted_mean(deltas, weights, key): ...
    >>> AGGREGATORS.get("weighted_mean")
    >>> AGGREGATORS.names()            # ('weighted_mean',)
"""

from __future__ import annotations

from typing import Any, Generic, Iterable, Mapping, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
  """A name that is not registered; the message lists the registered names."""

  def __str__(self) -> str:  # KeyError would quote the message
    return str(self.args[0])


class Registry(Generic[T]):
  """Named entries of one kind, each with optional tags (e.g. ``'categorical'``).

  Attributes:
    kind: what the entries are, for messages (``'estimator'``, ``'task family'``, ...).
    home: where users find it (``'fedbbpt_jax.data.DATASETS'``), for the message that
      says how to register a name a config asks for.
  """

  def __init__(self, kind: str, home: str = ""):
    self.kind = kind
    self.home = home
    self._entries: dict[str, T] = {}
    self._tags: dict[str, frozenset[str]] = {}
    self._reads: dict[str, dict[str, Any]] = {}

  def register(self, name: str, entry: T | None = None, *, tags: Iterable[str] = (),
               overwrite: bool = False, reads: Mapping[str, Any] | None = None):
    """Registers ``entry`` as ``name``; without ``entry``, returns a decorator.

    ``reads``: the config fields (dotted, e.g. ``'server.dp.clip_norm'``) that this
    entry reads and some other entries of the registry do not, each with its default
    (e.g. Krum and Multi-Krum both declare ``'server.robust.num_byzantine'``).

    Raises:
      ValueError: ``name`` is taken and ``overwrite`` is false.
    """
    if not isinstance(name, str) or not name:
      raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

    def add(value: T) -> T:
      if name in self._entries and not overwrite:
        raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True "
                         "to replace it")
      self._entries[name] = value
      self._tags[name] = frozenset(tags)
      self._reads[name] = dict(reads or {})
      return value

    if entry is None:
      return add
    return add(entry)

  def unregister(self, name: str) -> None:
    """Removes ``name`` (tests that register temporary entries clean up with this)."""
    self._entries.pop(name, None)
    self._tags.pop(name, None)
    self._reads.pop(name, None)

  def get(self, name: str, field: str | None = None, tag: str | None = None) -> T:
    """The entry registered as ``name`` (with ``tag``, if given).

    Args:
      name: the registered name.
      field: the config field ``name`` came from, named in the error message.
      tag: the tag the caller needs (e.g. ``'image'``): a name registered without it is
        refused like an unknown one, with the names that have it.

    Raises:
      UnknownNameError: naming the field, the value and the registered names.
    """
    if name not in self.names(tag):
      where = f"config.{field}={name!r}" if field else f"{self.kind} {name!r}"
      kind = f"{tag} {self.kind}" if tag else self.kind
      other = (f" (it is registered with tags {sorted(self._tags[name])})"
               if name in self._entries else "")
      raise UnknownNameError(f"{where} is not a registered {kind}{other}; choose one of "
                             f"{list(self.names(tag))}, {self.how_to_register(name, tag)}")
    return self._entries[name]

  def how_to_register(self, name: str, tag: str | None = None) -> str:
    """How a user adds ``name``: the sentence unknown-name messages end with."""
    owner, _, table = self.home.rpartition(".")
    call = (f"from {owner} import {table}; {table}.register({name!r}, ..."
            f"{f', tags=({tag!r},)' if tag else ''})" if self.home
            else f"register it{f' with tag {tag!r}' if tag else ''}")
    return (f"or register your own in a module of yours ({call}) and load it with "
            "--imports=your.module (see docs/extending.md)")

  def names(self, tag: str | None = None, *, without: str | None = None) -> tuple[str, ...]:
    """Sorted registered names, optionally only those with ``tag`` / without ``without``."""
    return tuple(sorted(n for n, t in self._tags.items()
                        if (tag is None or tag in t) and (without is None or without not in t)))

  def tags(self, name: str) -> frozenset[str]:
    self.get(name)
    return self._tags[name]

  def reads(self, name: str) -> dict[str, Any]:
    """The fields ``name`` declared it reads, with their defaults (``{}``: none)."""
    self.get(name)
    return dict(self._reads[name])

  def all_reads(self) -> dict[str, dict[str, Any]]:
    """``{name: reads(name)}`` for every registered name (sorted)."""
    return {name: dict(self._reads[name]) for name in self.names()}

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def __len__(self) -> int:
    return len(self._entries)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}, {list(self.names())})"
