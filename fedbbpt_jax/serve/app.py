"""The FastAPI app: a frozen model behind bearer keys, budgets, size limits and checks.

Endpoints (all errors are JSON ``{"error": code, "message": text, ...}``):

* ``GET /v1/info`` (no key needed): model name, input shape and dtype, accepted wire
  dtypes, accepted values (``pixel_range`` [low, high] or token ``id_range`` [low,
  high)), output kind and size, max batch, batch buckets and the buckets compiled; a
  zero-shot model also its head (``zero_shot``: ``class_names`` and ``templates``).
* ``POST /v1/predict``: body = one ``.npy`` array ``[n, *input_shape]`` (float32
  pixels in [0, 1], or uint8 levels read as ``q / 255``, or int32 token ids in
  ``[0, vocab_size)``; either byte order), Content-Type ``application/x-npy``;
  answers the ``[n, output_size]`` float32 outputs as ``.npy``. Costs ``n`` examples.
  401 no key, 403 unknown key, 415 other Content-Type, 413 body over
  ``max_request_bytes`` or ``n > max_batch``, 400 malformed body, wrong shape or
  dtype, empty batch, NaN or inf, a value outside the model's input range (refused,
  never clipped: the message names the range), 402 budget spent (the request is
  refused whole), 408 body not complete within ``body_timeout_s``
  (``request_timeout``), 500 model failure (``model_error``) or NaN/inf outputs
  (``non_finite_output``, with the rows): nothing charged.
* ``GET /v1/usage``: ``{key_id, used, budget, remaining, requests, refused_requests}``
  for the calling key.

A client that disconnects before its body is complete is logged in one line (no
traceback) and charged nothing. A client that stops sending mid-body is answered 408
``request_timeout`` once ``body_timeout_s`` (default 30 s, ``--body_timeout_s``) has
passed since the handler started reading, logged in one line and charged nothing; an
answer given before the body was read whole (408, 413, 400 ``bad_content_length``)
closes the connection. (uvicorn has no body timeout of its own, nor one for headers:
``timeout_keep_alive`` only closes connections idle between requests, so a client that
stops mid-headers is held until it leaves; ``limit_concurrency`` caps how many are.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fedbbpt_jax.blackbox.wire import (NPY_CONTENT_TYPE, WireFormatError, decode_array,
                                       encode_array, from_wire)
from fedbbpt_jax.serve.batching import BucketedForward
from fedbbpt_jax.serve.keys import AccessError, KeyStore
from fedbbpt_jax.serve.models import ServedModel

NPY_HEADER_ALLOWANCE = 4096
BODY_TIMEOUT_S = 30.0
logger = logging.getLogger("fedbbpt_jax.serve")


def default_max_request_bytes(model: ServedModel, max_batch: int) -> int:
  """Largest body a full float32 batch needs, plus room for the ``.npy`` header."""
  return max_batch * math.prod(model.input_shape) * 4 + NPY_HEADER_ALLOWANCE


def error_response(error: AccessError) -> JSONResponse:
  """The JSON answer of a refused request (``Connection: close`` when the body was left
  unread: the connection cannot carry another request)."""
  return JSONResponse(status_code=error.status,
                      content={"error": error.code, "message": error.message, **error.details},
                      headers={"Connection": "close"} if error.close_connection else None)


def check_inputs(array: np.ndarray, model: ServedModel, max_batch: int) -> np.ndarray:
  """Returns model inputs (float32 pixels or int32 token ids) for a decoded request array.

  One rule for every wire dtype: a value outside the model's input domain is refused,
  never clipped (a paid API should not bill a silently altered input). float32 pixels
  must be finite and in ``model.pixel_range``; uint8 levels always map into [0, 1];
  int32 token ids must be in ``model.id_range``.

  Raises:
    AccessError: 400 for a wrong dtype, rank or shape, an empty batch, non-finite
      values or values outside the input range; 413 for more than ``max_batch`` examples.
  """
  if array.dtype.name not in model.wire_dtypes:
    raise AccessError(400, "bad_dtype", f"input dtype {array.dtype.name} is not accepted; "
                      f"send one of {list(model.wire_dtypes)}")
  expected = "[n, " + ", ".join(map(str, model.input_shape)) + "]"
  if array.ndim != len(model.input_shape) + 1 or array.shape[1:] != model.input_shape:
    raise AccessError(400, "bad_shape", f"input of shape {list(array.shape)} does not match "
                      f"{expected} ({model.name} input shape {list(model.input_shape)})")
  if array.shape[0] == 0:
    raise AccessError(400, "empty_batch", "empty batch: send at least one input")
  if array.shape[0] > max_batch:
    raise AccessError(413, "batch_too_large", f"batch of {array.shape[0]} inputs exceeds the "
                      f"max batch {max_batch}; split it into requests of at most {max_batch}")
  try:
    inputs = from_wire(array)
  except WireFormatError as e:
    raise AccessError(400, "bad_dtype", str(e)) from None
  if model.id_range is not None:
    low, high = model.id_range
    if inputs.min() < low or inputs.max() >= high:
      raise AccessError(400, "bad_token_id", f"token ids must be in [{low}, {high}); got "
                        f"{int(inputs.min())}..{int(inputs.max())}")
    return inputs
  if not np.isfinite(inputs).all():
    raise AccessError(400, "non_finite_input", "inputs contain NaN or infinite values")
  if model.pixel_range is not None:
    low, high = model.pixel_range
    outside = int(np.count_nonzero((inputs < low) | (inputs > high)))
    if outside:
      raise AccessError(400, "out_of_range", f"{array.dtype.name} pixels must be in "
                        f"[{low:g}, {high:g}]; got values in [{inputs.min()!s}, {inputs.max()!s}] "
                        f"({outside} of {inputs.size} outside)")
  return inputs


def check_outputs(outputs: np.ndarray) -> None:
  """Refuses outputs with NaN or inf (the caller refunds: a broken answer is not billed).

  Raises:
    AccessError: 500 ``non_finite_output`` naming the rows (``rows`` in the body).
  """
  bad = np.flatnonzero(~np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1))
  if bad.size:
    raise AccessError(500, "non_finite_output", f"the model answered NaN or inf for {bad.size} "
                      f"of {len(outputs)} inputs (rows {bad.tolist()}); nothing was charged",
                      rows=bad.tolist())


class ClientGone(Exception):
  """The client disconnected before its request body was complete."""


async def read_body(request: Request, max_bytes: int,
                    timeout_s: float | None = BODY_TIMEOUT_S) -> bytes:
  """Reads the body, refusing (413) anything over ``max_bytes`` before reading it all.

  Args:
    request: the request whose body is read.
    max_bytes: the largest body accepted.
    timeout_s: seconds the whole body may take to arrive (None: no limit).

  Raises:
    AccessError: 400 for a malformed Content-Length, 413 for a body over ``max_bytes``,
      408 when the body is not complete within ``timeout_s`` (logged here, in one line).
    ClientGone: the client disconnected mid-body (logged here, in one line).
  """
  too_large = AccessError(413, "request_too_large",
                          f"request body exceeds the limit of {max_bytes} bytes",
                          close_connection=True)
  declared = request.headers.get("content-length")
  if declared is not None:
    if not re.fullmatch(r"[0-9]+", declared):
      raise AccessError(400, "bad_content_length", f"invalid Content-Length {declared!r}",
                        close_connection=True)
    if int(declared) > max_bytes:
      raise too_large
  chunks, size = [], 0
  host = request.client.host if request.client else "unknown"
  try:
    async with asyncio.timeout(timeout_s):
      async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
          raise too_large
        chunks.append(chunk)
  except ClientDisconnect:
    logger.warning("client %s disconnected after sending %d of %s body bytes of %s %s; "
                   "request dropped, nothing charged", host, size, declared or "?",
                   request.method, request.url.path)
    raise ClientGone() from None
  except TimeoutError:
    logger.warning("client %s sent %d of %s body bytes of %s %s in %g s; answered 408, "
                   "nothing charged", host, size, declared or "?", request.method,
                   request.url.path, timeout_s)
    raise AccessError(408, "request_timeout",
                      f"the request body did not arrive within {timeout_s:g} s (got {size} of "
                      f"{declared or 'an undeclared number of'} bytes); nothing was charged",
                      close_connection=True) from None
  return b"".join(chunks)


def create_app(model: ServedModel, keys: KeyStore, max_batch: int = 64,
               max_request_bytes: int | None = None, warmup: bool = False,
               body_timeout_s: float | None = BODY_TIMEOUT_S) -> FastAPI:
  """Returns the service's FastAPI app for ``model``.

  Args:
    model: the served model (see ``serve.models``).
    keys: API keys and budgets (``KeyStore()`` = open service).
    max_batch: most examples per request; forwards are padded to ``batch_buckets``.
    max_request_bytes: body size limit (default: a full float32 batch plus header).
    warmup: compile every batch bucket before the app is built.
    body_timeout_s: seconds a request body may take to arrive (408 after; None: no limit).
  """
  if body_timeout_s is not None and not body_timeout_s > 0:
    raise ValueError(f"body_timeout_s={body_timeout_s} must be > 0 (or None: no limit)")
  forward = BucketedForward(model.forward, model.input_shape, max_batch, model.input_dtype)
  if warmup:
    forward.warmup()
  max_bytes = max_request_bytes or default_max_request_bytes(model, max_batch)
  app = FastAPI(title=f"fedbbpt_jax model service ({model.name})")

  @app.exception_handler(AccessError)
  async def access_error(request: Request, error: AccessError) -> JSONResponse:
    del request
    return error_response(error)

  @app.exception_handler(ClientGone)
  async def client_gone(request: Request, error: ClientGone) -> Response:
    del request, error
    return Response(status_code=400)  # nobody reads it: the server drops it unsent

  @app.exception_handler(Exception)
  async def internal_error(request: Request, error: Exception) -> JSONResponse:
    del request
    return JSONResponse(status_code=500, content={
        "error": "internal_error", "message": f"{type(error).__name__}: {error}"})

  @app.get("/v1/info")
  async def info() -> dict:
    head = {"zero_shot": model.zero_shot} if model.zero_shot is not None else {}
    return {**head, "model": model.name, "input_shape": list(model.input_shape),
            "input_dtype": model.input_dtype, "wire_dtypes": list(model.wire_dtypes),
            "pixel_range": list(model.pixel_range) if model.pixel_range else None,
            "id_range": list(model.id_range) if model.id_range else None,
            "wire_format": NPY_CONTENT_TYPE, "output_kind": model.output_kind,
            "output_size": model.output_size, "max_batch": max_batch,
            "max_request_bytes": max_bytes, "batch_buckets": list(forward.buckets),
            "compiled_buckets": list(forward.compiled_buckets), "open": keys.open}

  @app.get("/v1/usage")
  async def usage(request: Request) -> dict:
    return keys.usage(keys.authenticate(request.headers.get("authorization")))

  @app.post("/v1/predict")
  async def predict(request: Request) -> Response:
    key = keys.authenticate(request.headers.get("authorization"))
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != NPY_CONTENT_TYPE:
      raise AccessError(415, "unsupported_media_type", f"Content-Type {content_type!r} is not "
                        f"supported; send a .npy body as {NPY_CONTENT_TYPE}")
    body = await read_body(request, max_bytes, body_timeout_s)
    try:
      array = decode_array(body)
    except WireFormatError as e:
      raise AccessError(400, "bad_body", str(e)) from None
    inputs = check_inputs(array, model, max_batch)
    keys.charge(key, len(inputs))
    try:
      outputs = np.asarray(await run_in_threadpool(forward, inputs), np.float32)
    except Exception as e:
      keys.refund(key, len(inputs))
      raise AccessError(500, "model_error", f"model failed: {type(e).__name__}: {e}") from None
    try:
      check_outputs(outputs)
    except AccessError:
      keys.refund(key, len(inputs))
      raise
    return Response(content=encode_array(outputs), media_type=NPY_CONTENT_TYPE)

  return app
