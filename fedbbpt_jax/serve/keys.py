"""API keys and per-key query budgets, counted in the unit the service charges.

The image/text model service charges examples, the chat service tokens; ``charge``
takes the unit, so a refusal (402) names it.

Key file: one JSON object mapping each key to its budget (in the service's unit),
``null`` for no limit::

    {"team-a-7f3c9e": 100000, "team-b-51d0aa": 5000, "provider-admin": null}

A file that cannot be read, is not JSON, is not a non-empty object, repeats a key, or
holds an empty key, a key with spaces, or a budget that is not an integer >= 0 (``true``,
``1.5``, ``-1``, ``"100"``) is refused with a ``ValueError`` naming the file and the entry.

Without a key file the service runs open: any bearer token (or none) is accepted,
and usage is tracked per token (``"anonymous"`` without one), unlimited. Usage lives
in memory: a restarted service starts every key from zero.
"""

from __future__ import annotations

import dataclasses
import json
import threading

ANONYMOUS = "anonymous"


class AccessError(Exception):
  """A request is refused; carries the HTTP status, an error code and a message."""

  def __init__(self, status: int, code: str, message: str, *, close_connection: bool = False,
               **details):
    super().__init__(message)
    self.status = status
    self.code = code
    self.message = message
    self.close_connection = close_connection  # answered before the body was read whole
    self.details = details


@dataclasses.dataclass
class Account:
  """One key's budget (``None`` = unlimited) and running usage."""

  budget: int | None
  used: int = 0
  requests: int = 0
  refused_requests: int = 0

  @property
  def remaining(self) -> int | None:
    return None if self.budget is None else self.budget - self.used


def _refuse_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
  seen = {}
  for key, value in pairs:
    if key in seen:
      raise ValueError(f"key {mask_key(key)!r} appears more than once")
    seen[key] = value
  return seen


def _json_kind(value: object) -> str:
  if isinstance(value, dict):
    return "an empty object" if not value else "an object"
  kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number",
           float: "a number", type(None): "null"}
  return kinds.get(type(value), type(value).__name__)


def read_key_file(path: str) -> dict[str, int | None]:
  """Reads and checks a key file (see the module docstring).

  Raises:
    ValueError: the file cannot be read, or is not a JSON object of distinct non-empty
      keys without spaces to budgets (integers >= 0 or null); the message names the file
      and, for a bad entry, its position and its key (first 4 characters).
  """
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise ValueError(f"key file {path} cannot be read: {e.strerror or e}") from None
  except UnicodeDecodeError as e:
    raise ValueError(f"key file {path} is not UTF-8 text: {e}") from None
  try:
    budgets = json.loads(text, object_pairs_hook=_refuse_repeated_keys)
  except json.JSONDecodeError as e:
    raise ValueError(f"key file {path} is not valid JSON: {e}") from None
  except ValueError as e:  # a repeated key
    raise ValueError(f"key file {path}: {e}") from None
  if not isinstance(budgets, dict) or not budgets:
    raise ValueError(f"key file {path} must hold a non-empty JSON object {{key: budget}}, "
                     f"got {_json_kind(budgets)}")
  for i, (key, budget) in enumerate(budgets.items()):
    entry = f"key file {path}, entry {i} (key {mask_key(key)!r})"
    if not key.strip() or any(c.isspace() for c in key):
      raise ValueError(f"{entry}: a key must be non-empty and without spaces")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 0):
      raise ValueError(f"{entry}: a budget must be an integer >= 0 or null, got "
                       f"{json.dumps(budget)}")
  return budgets


def mask_key(key: str) -> str:
  """A printable key id that does not reveal the key (its first 4 characters)."""
  return key if key == ANONYMOUS else key[:4] + "..."


class KeyStore:
  """Authenticates bearer tokens and charges requests to their budgets (thread-safe).

  Args:
    budgets: ``{key: budget or None}``; ``None`` runs the service open.
  """

  def __init__(self, budgets: dict[str, int | None] | None = None):
    self.open = budgets is None
    self._accounts = {k: Account(budget=b) for k, b in (budgets or {}).items()}
    self._lock = threading.Lock()

  @classmethod
  def from_file(cls, path: str | None) -> "KeyStore":
    return cls(read_key_file(path) if path else None)

  def authenticate(self, authorization: str | None) -> str:
    """Returns the key of an ``Authorization`` header.

    Raises:
      AccessError: 401 without a bearer token, 403 for an unknown key.
    """
    token = ""
    if authorization:
      scheme, _, token = authorization.partition(" ")
      if scheme.lower() != "bearer":
        token = ""
      token = token.strip()
    if self.open:
      key = token or ANONYMOUS
      with self._lock:
        self._accounts.setdefault(key, Account(budget=None))
      return key
    if not token:
      raise AccessError(401, "missing_api_key",
                        "missing API key: send the header 'Authorization: Bearer <key>'")
    if token not in self._accounts:
      raise AccessError(403, "unknown_api_key", f"unknown API key {mask_key(token)!r}")
    return token

  def charge(self, key: str, amount: int, unit: str = "examples") -> None:
    """Charges ``amount`` (``unit``: what the service counts) to ``key`` as one request,
    all or nothing.

    Raises:
      AccessError: 402 when the remaining budget is smaller than ``amount`` (the message
        counts in ``unit``).
    """
    with self._lock:
      account = self._accounts[key]
      if account.remaining is not None and amount > account.remaining:
        account.refused_requests += 1
        raise AccessError(
            402, "budget_exceeded",
            f"query budget spent: key {mask_key(key)!r} has used {account.used} of "
            f"{account.budget} {unit}; this request of {amount} {unit} needs more than the "
            f"{account.remaining} left (refused whole, nothing charged)",
            used=account.used, budget=account.budget, remaining=account.remaining,
            requested=amount, unit=unit)
      account.used += amount
      account.requests += 1

  def give_back(self, key: str, units: int) -> None:
    """Returns the unused part of a reservation (e.g. tokens not generated); the request
    still counts."""
    with self._lock:
      self._accounts[key].used -= max(int(units), 0)

  def refund(self, key: str, amount: int) -> None:
    """Takes back a charge whose request failed on the server's side."""
    with self._lock:
      account = self._accounts[key]
      account.used -= amount
      account.requests -= 1

  def set_budget(self, key: str, budget: int | None) -> None:
    """Gives ``key`` a new total budget (``None`` = unlimited); what it used stays used."""
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)
                               or budget < 0):
      raise ValueError(f"a budget is an integer >= 0 or None, got {budget!r}")
    with self._lock:
      if key not in self._accounts:
        raise KeyError(f"unknown API key {mask_key(key)!r}")
      self._accounts[key].budget = budget

  def usage(self, key: str) -> dict:
    """Returns ``{key_id, used, budget, remaining, requests, refused_requests}``."""
    with self._lock:
      a = self._accounts[key]
      return {"key_id": mask_key(key), "used": a.used, "budget": a.budget,
              "remaining": a.remaining, "requests": a.requests,
              "refused_requests": a.refused_requests}
