"""A black box behind an HTTP inference API (the model service in ``fedbbpt_jax.serve``).

Jitted code reaches the API through ``jax.pure_callback(..., vmap_method="expand_dims")``:
under ``vmap`` over clients and candidates the callback is not repeated per element
but receives all of them stacked, so one compiled step (C clients x D candidates x
B examples) is ONE host call. The host side flattens that batch, splits it into
requests of at most the server's ``max_batch`` examples, sends them concurrently over
a persistent connection pool, and reassembles the outputs in order::

    [C, D*B, S, S, 3] --flatten--> [C*D*B, ...] --chunks of max_batch--> N requests
        (thread pool, keep-alive) --> concatenate --> [C, D*B, 1000]

so a step costs ``ceil(C*D*B / max_batch)`` requests, not ``C*D``.

Errors. A pure callback must not raise (XLA turns it into an opaque
``JaxRuntimeError``). The callback therefore records the first error, returns NaN
outputs, and skips every later call until ``raise_pending_error()`` raises the
recorded ``RemoteBlackBoxError`` on the host (the train loop calls it after every
step and evaluation, before anything is committed). Called eagerly (outside
``jit``), the black box raises at once.

Query accounting. XLA may elide a callback whose result is unused, hoist it out of a
loop, or (in principle) run it twice. ``meter`` therefore counts what was actually
sent and answered: ``examples_sent`` agrees with the server's ``/v1/usage`` ``used``
(the server charges exactly the answered requests), not with a count derived from
shapes.

Example:
  >>> bb = RemoteBlackBox("http://127.0.0.1:8000", api_key=os.environ["FEDBBPT_API_KEY"])
  >>> logits = jax.jit(bb)(images)      # [N, 1000]; images [N, *bb.input_shape]
  >>> bb.meter.as_dict()["examples_sent"]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import random
import threading
import time
from typing import Any

import httpx
import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.meter import QueryBudgetExceeded
from fedbbpt_jax.blackbox.wire import (NPY_CONTENT_TYPE, WIRE_DTYPES, WireFormatError,
                                       decode_array, encode_array, to_wire)

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
BUDGET_ERROR_CODE = "budget_exceeded"
# Error codes never retried whatever their status: the same inputs give the same answer
# (the service refuses to bill NaN/inf outputs with a 500 ``non_finite_output``).
NOT_RETRIED_CODES = frozenset({"non_finite_output"})


class RemoteBlackBoxError(RuntimeError):
  """A request to the model service failed for good.

  Attributes:
    url: the URL requested.
    status: the last HTTP status (``None`` for connection errors and timeouts).
    server_message: the server's message (or the transport error's text).
  """

  def __init__(self, url: str, status: int | None, server_message: str, attempts: int = 1):
    self.url = url
    self.status = status
    self.server_message = server_message
    what = f"HTTP {status}" if status is not None else "no HTTP response"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    super().__init__(f"remote black box {url} failed{tries}: {what}: {server_message}")


class RemoteBudgetExceeded(RemoteBlackBoxError, QueryBudgetExceeded):
  """The API key's query budget is spent (HTTP 402, or 429 with a budget message).

  Also a ``QueryBudgetExceeded``, so the train loop stops as cleanly as with a local
  budget: the last complete round stays saved and nothing of the failed round is kept.
  """


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
  """How requests are retried on 429, 5xx, connection errors and timeouts.

  Never retried: 4xx other than 429, a spent budget, a 500 ``non_finite_output`` (the
  model answered NaN/inf; the same inputs would again) and a 200 whose body has the
  wrong shape (``RemoteBlackBoxError`` naming expected and received shapes).

  Attributes:
    max_attempts: attempts per request in total (1 = never retry).
    backoff_seconds: delay before the first retry; doubled for each further one
      (with +-25% jitter so that many clients do not retry in lock step).
    max_backoff_seconds: cap of a single delay.
    timeout_seconds: connect/read timeout of one attempt.
  """

  max_attempts: int = 5
  backoff_seconds: float = 0.5
  max_backoff_seconds: float = 30.0
  timeout_seconds: float = 60.0

  def delay(self, retry_index: int) -> float:
    """Seconds to wait before retry ``retry_index`` (0-based)."""
    base = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** retry_index)
    return base * random.uniform(0.75, 1.25)


@dataclasses.dataclass
class RemoteMeter:
  """What this process actually sent (thread-safe; see the module docstring).

  Attributes:
    host_calls: predictions asked of the host (one per compiled step under vmap).
    http_requests: HTTP attempts made for predictions, retries included.
    http_retries: attempts that were retries.
    examples_sent: examples in answered (HTTP 200) requests = what the server charged.
  """

  host_calls: int = 0
  http_requests: int = 0
  http_retries: int = 0
  examples_sent: int = 0
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False,
                                            compare=False)

  def add(self, **counts: int) -> None:
    with self._lock:
      for name, value in counts.items():
        setattr(self, name, getattr(self, name) + int(value))

  def as_dict(self) -> dict[str, int]:
    with self._lock:
      return {"host_calls": self.host_calls, "http_requests": self.http_requests,
              "http_retries": self.http_retries, "examples_sent": self.examples_sent}


def _server_message(response: httpx.Response) -> tuple[str, str]:
  """Returns (error code, message) of an error response (JSON ``{error, message}``)."""
  try:
    body = response.json()
    return str(body.get("error", "")), str(body.get("message", body))
  except ValueError:
    return "", response.text[:500] or response.reason_phrase


def split_batches(num_examples: int, max_batch: int) -> list[slice]:
  """Row slices of at most ``max_batch`` covering ``range(num_examples)`` in order."""
  return [slice(s, min(s + max_batch, num_examples)) for s in range(0, num_examples, max_batch)]


class RemoteBlackBox(BlackBox):
  """The model behind a ``fedbbpt_jax.serve`` endpoint, usable inside ``jit`` and ``vmap``.

  Reads ``GET /v1/info`` at construction (name, input shape, output size, max batch).

  Args:
    url: service root, e.g. ``http://127.0.0.1:8000``.
    api_key: bearer token ('' for a service running without keys).
    wire_dtype: ``'float32'`` (exact) or ``'uint8'`` (pixels quantised to 8 bits).
    retry: retry policy for 429, 5xx, connection errors and timeouts.
    max_concurrency: requests in flight at once (thread pool and connection pool size).
    transport: optional ``httpx`` transport (tests use ``httpx.MockTransport``).

  Raises:
    RemoteBlackBoxError: the service could not be reached or refused ``/v1/info``.
  """

  def __init__(self, url: str, api_key: str = "", *, wire_dtype: str = "float32",
               retry: RetryPolicy = RetryPolicy(), max_concurrency: int = 8,
               transport: httpx.BaseTransport | None = None):
    if wire_dtype not in WIRE_DTYPES:
      raise ValueError(f"wire_dtype={wire_dtype!r} is not one of {list(WIRE_DTYPES)}")
    self.url = url.rstrip("/")
    self.wire_dtype = wire_dtype
    self.retry = retry
    self.meter = RemoteMeter()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=max_concurrency,
                          max_keepalive_connections=max_concurrency)
    self._http = httpx.Client(base_url=self.url, headers=headers, limits=limits,
                              timeout=retry.timeout_seconds, transport=transport)
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrency,
                                                       thread_name_prefix="remote-blackbox")
    self._error_lock = threading.Lock()
    self._pending_error: RemoteBlackBoxError | None = None
    self.info = self._request("GET", "/v1/info").json()
    self.name = str(self.info["model"])
    self.input_shape = tuple(int(d) for d in self.info["input_shape"])
    self.output_size = int(self.info["output_size"])
    self.max_batch = int(self.info["max_batch"])
    if wire_dtype not in self.info.get("wire_dtypes", ["float32"]):
      raise ValueError(f"the service at {self.url} does not accept wire dtype {wire_dtype!r}; "
                       f"it accepts {self.info.get('wire_dtypes')}")

  # -- HTTP -----------------------------------------------------------------

  def _request(self, method: str, path: str, content: bytes | None = None,
               examples: int = 0) -> httpx.Response:
    """Sends one request with retries; returns the 200 response or raises."""
    url = self.url + path
    headers = {"Content-Type": NPY_CONTENT_TYPE, "Accept": NPY_CONTENT_TYPE} if content else None
    status, message, retry_after = None, "", 0.0
    for attempt in range(self.retry.max_attempts):
      if attempt:
        time.sleep(max(self.retry.delay(attempt - 1), retry_after))
        retry_after = 0.0
      if examples:
        self.meter.add(http_requests=1, http_retries=int(attempt > 0))
      try:
        response = self._http.request(method, path, content=content, headers=headers)
      except (httpx.TransportError, httpx.TimeoutException) as e:
        status, message = None, f"{type(e).__name__}: {e}"
        continue
      if response.status_code == 200:
        if examples:
          self.meter.add(examples_sent=examples)
        return response
      status = response.status_code
      code, message = _server_message(response)
      if status == 402 or (status == 429 and code == BUDGET_ERROR_CODE):
        raise RemoteBudgetExceeded(url, status, message)
      if status not in RETRIED_STATUSES or code in NOT_RETRIED_CODES:
        raise RemoteBlackBoxError(url, status, message)
      try:
        retry_after = float(response.headers.get("Retry-After", 0.0))
      except ValueError:
        retry_after = 0.0
    raise RemoteBlackBoxError(url, status, message, attempts=self.retry.max_attempts)

  def _predict_chunk(self, chunk: np.ndarray) -> np.ndarray:
    response = self._request("POST", "/v1/predict", encode_array(to_wire(chunk, self.wire_dtype)),
                             examples=len(chunk))
    try:
      out = decode_array(response.content)
    except WireFormatError as e:
      raise RemoteBlackBoxError(self.url + "/v1/predict", 200, f"bad response body: {e}") from None
    expected = (len(chunk), self.output_size)
    if out.shape != expected or out.dtype.kind not in "fiu":
      kind = "" if out.dtype.kind in "fiu" else f" of dtype {out.dtype.str}"
      raise RemoteBlackBoxError(
          self.url + "/v1/predict", 200,
          f"the service answered outputs of shape {out.shape}{kind} for {len(chunk)} inputs; "
          f"expected {expected} float32 ({len(chunk)} inputs x output_size "
          f"{self.output_size} from /v1/info)")
    return out.astype(np.float32, copy=False)

  # -- host side ------------------------------------------------------------

  def predict(self, inputs: np.ndarray) -> np.ndarray:
    """Host-side prediction of ``[*lead, *input_shape]`` inputs -> ``[*lead, output_size]``.

    All leading axes are flattened, split into requests of at most ``max_batch`` and
    sent concurrently; outputs come back in input order.

    Raises:
      RemoteBudgetExceeded: the key's budget is spent.
      RemoteBlackBoxError: any other failure, after the retries.
    """
    inputs = np.asarray(inputs, np.float32)
    k = len(self.input_shape)
    if inputs.ndim < k + 1 or tuple(inputs.shape[inputs.ndim - k:]) != self.input_shape:
      raise ValueError(f"inputs of shape {inputs.shape} do not end in {self.input_shape}")
    lead = inputs.shape[:inputs.ndim - k]
    flat = inputs.reshape((math.prod(lead),) + self.input_shape)
    self.meter.add(host_calls=1)
    if len(flat) == 0:
      return np.zeros(lead + (self.output_size,), np.float32)
    chunks = [flat[s] for s in split_batches(len(flat), self.max_batch)]
    outputs = list(self._pool.map(self._predict_chunk, chunks))
    return np.concatenate(outputs).reshape(lead + (self.output_size,))

  def _host_callback(self, inputs: np.ndarray) -> np.ndarray:
    """``predict`` for ``pure_callback``: never raises; records the first error instead."""
    nan = np.full(inputs.shape[:inputs.ndim - len(self.input_shape)] + (self.output_size,),
                  np.nan, np.float32)
    with self._error_lock:
      if self._pending_error is not None:
        return nan
    try:
      return self.predict(inputs)
    except Exception as e:  # pylint: disable=broad-except
      error = e if isinstance(e, RemoteBlackBoxError) else RemoteBlackBoxError(
          self.url + "/v1/predict", None, f"{type(e).__name__}: {e}")
      with self._error_lock:
        if self._pending_error is None:
          self._pending_error = error
      return nan

  def raise_pending_error(self) -> None:
    """Raises (and clears) the error a host callback recorded; no-op when there is none."""
    with self._error_lock:
      error, self._pending_error = self._pending_error, None
    if error is not None:
      raise error

  @property
  def pending_error(self) -> RemoteBlackBoxError | None:
    return self._pending_error

  def usage(self) -> dict[str, Any]:
    """Returns the service's ``/v1/usage`` for this key (queries used, left, requests)."""
    return self._request("GET", "/v1/usage").json()

  def close(self) -> None:
    """Closes the connection and thread pools."""
    self._pool.shutdown(wait=True)
    self._http.close()

  # -- jax side -------------------------------------------------------------

  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    if not isinstance(inputs, jax.core.Tracer):
      return jnp.asarray(self.predict(np.asarray(inputs)))
    result = jax.ShapeDtypeStruct((inputs.shape[0], self.output_size), jnp.float32)
    return jax.pure_callback(self._host_callback, result, inputs.astype(jnp.float32),
                             vmap_method="expand_dims")
