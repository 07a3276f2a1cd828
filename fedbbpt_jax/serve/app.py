"""The FastAPI app: a frozen model behind bearer keys, budgets, size limits and checks.

Endpoints (all errors are JSON ``{"error": code, "message": text, ...}``):

* ``GET /v1/info`` (no key needed): model name, input shape and dtype, accepted wire
  dtypes, output kind and size, max batch, batch buckets and the buckets compiled.
* ``POST /v1/predict``: body = one ``.npy`` array ``[n, *input_shape]`` (float32
  pixels, or uint8 levels read as ``q / 255``), Content-Type ``application/x-npy``;
  answers the ``[n, output_size]`` float32 outputs as ``.npy``. Costs ``n`` examples.
  401 no key, 403 unknown key, 415 other Content-Type, 413 body over
  ``max_request_bytes`` or ``n > max_batch``, 400 malformed body, wrong shape or
  dtype, empty batch, NaN or inf, 402 budget spent (the request is refused whole),
  500 model failure (refunded).
* ``GET /v1/usage``: ``{key_id, used, budget, remaining, requests, refused_requests}``
  for the calling key.
"""

from __future__ import annotations

import math

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fedbbpt_jax.blackbox.wire import (NPY_CONTENT_TYPE, WireFormatError, decode_array,
                                       encode_array, from_wire)
from fedbbpt_jax.serve.batching import BucketedForward
from fedbbpt_jax.serve.keys import AccessError, KeyStore
from fedbbpt_jax.serve.models import ServedModel

NPY_HEADER_ALLOWANCE = 4096


def default_max_request_bytes(model: ServedModel, max_batch: int) -> int:
  """Largest body a full float32 batch needs, plus room for the ``.npy`` header."""
  return max_batch * math.prod(model.input_shape) * 4 + NPY_HEADER_ALLOWANCE


def error_response(error: AccessError) -> JSONResponse:
  return JSONResponse(status_code=error.status,
                      content={"error": error.code, "message": error.message, **error.details})


def check_inputs(array: np.ndarray, model: ServedModel, max_batch: int) -> np.ndarray:
  """Returns model inputs (float32 pixels or int32 token ids) for a decoded request array.

  Raises:
    AccessError: 400 for a wrong dtype, rank or shape, an empty batch or non-finite
      values; 413 for more than ``max_batch`` examples.
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
  inputs = from_wire(array)
  if model.id_range is not None:
    low, high = model.id_range
    if inputs.min() < low or inputs.max() >= high:
      raise AccessError(400, "bad_token_id", f"token ids must be in [{low}, {high}); got "
                        f"{int(inputs.min())}..{int(inputs.max())}")
  elif not np.isfinite(inputs).all():
    raise AccessError(400, "non_finite_input", "inputs contain NaN or infinite values")
  return inputs


async def read_body(request: Request, max_bytes: int) -> bytes:
  """Reads the body, refusing (413) anything over ``max_bytes`` before reading it all."""
  too_large = AccessError(413, "request_too_large",
                          f"request body exceeds the limit of {max_bytes} bytes")
  declared = request.headers.get("content-length")
  if declared is not None:
    if not declared.isdigit():
      raise AccessError(400, "bad_content_length", f"invalid Content-Length {declared!r}")
    if int(declared) > max_bytes:
      raise too_large
  chunks, size = [], 0
  async for chunk in request.stream():
    size += len(chunk)
    if size > max_bytes:
      raise too_large
    chunks.append(chunk)
  return b"".join(chunks)


def create_app(model: ServedModel, keys: KeyStore, max_batch: int = 64,
               max_request_bytes: int | None = None, warmup: bool = False) -> FastAPI:
  """Returns the service's FastAPI app for ``model``.

  Args:
    model: the served model (see ``serve.models``).
    keys: API keys and budgets (``KeyStore()`` = open service).
    max_batch: most examples per request; forwards are padded to ``batch_buckets``.
    max_request_bytes: body size limit (default: a full float32 batch plus header).
    warmup: compile every batch bucket before the app is built.
  """
  forward = BucketedForward(model.forward, model.input_shape, max_batch, model.input_dtype)
  if warmup:
    forward.warmup()
  max_bytes = max_request_bytes or default_max_request_bytes(model, max_batch)
  app = FastAPI(title=f"fedbbpt_jax model service ({model.name})")

  @app.exception_handler(AccessError)
  async def access_error(request: Request, error: AccessError) -> JSONResponse:
    del request
    return error_response(error)

  @app.exception_handler(Exception)
  async def internal_error(request: Request, error: Exception) -> JSONResponse:
    del request
    return JSONResponse(status_code=500, content={
        "error": "internal_error", "message": f"{type(error).__name__}: {error}"})

  @app.get("/v1/info")
  async def info() -> dict:
    return {"model": model.name, "input_shape": list(model.input_shape),
            "input_dtype": model.input_dtype, "wire_dtypes": list(model.wire_dtypes),
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
    body = await read_body(request, max_bytes)
    try:
      array = decode_array(body)
    except WireFormatError as e:
      raise AccessError(400, "bad_body", str(e)) from None
    inputs = check_inputs(array, model, max_batch)
    keys.charge(key, len(inputs))
    try:
      outputs = await run_in_threadpool(forward, inputs)
    except Exception as e:
      keys.refund(key, len(inputs))
      raise AccessError(500, "model_error", f"model failed: {type(e).__name__}: {e}") from None
    return Response(content=encode_array(np.asarray(outputs, np.float32)),
                    media_type=NPY_CONTENT_TYPE)

  return app
