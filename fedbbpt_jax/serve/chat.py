"""An OpenAI-compatible chat endpoint serving a local causal LM (a real HTTP service
for the instruction track's black-box LLM, on loopback in tests).

    python -m fedbbpt_jax.serve.chat [--model=smollm2-135m-instruct] --port=8100 \\
        [--keys=keys.json] [--max_request_bytes=N] [--body_timeout_s=30] \\
        [--ssl_certfile=cert.pem --ssl_keyfile=key.pem]

Endpoints (errors are JSON ``{"error": code, "message": text, ...}``):

* ``GET /v1/models``: ``{"object": "list", "data": [{"id": name, "object": "model"}]}``.
* ``POST /v1/chat/completions``: ``{"model", "messages": [{"role", "content"}],
  "max_tokens" (default 64), "temperature" (0 only: greedy), "n" (1 only), "stream"
  (false only: answers come whole; ``true`` is a 400 naming the field)}`` ->
  ``{"id", "object": "chat.completion", "created", "model", "choices": [{"index": 0,
  "message": {"role": "assistant", "content"}, "finish_reason"}], "usage":
  {"prompt_tokens", "completion_tokens", "total_tokens"}}``. Budgets count tokens:
  ``prompt + max_tokens`` is reserved before generating (402 naming tokens if the key
  has less left; nothing generated) and the unused part is given back.
* ``GET /v1/usage``: the calling key's ``{used (tokens), budget, remaining, requests,
  refused_requests}``.

Limits, checked in this order, each before any work it guards (nothing is charged for
a refused request):

* the body: at most ``max_request_bytes`` (413 ``request_too_large``, refused on its
  Content-Length or as soon as the streamed bytes pass it, never read whole). Default
  ``max_positions * BODY_BYTES_PER_TOKEN + JSON_OVERHEAD_BYTES``: 64 bytes a token
  (a token covers a few bytes of text, up to 6 bytes a byte once JSON-escaped) plus
  64 KiB for the JSON around the messages; 576 KiB for SmolLM2's 8192 positions.
  The body must arrive within ``body_timeout_s`` (408 ``request_timeout``, default 30 s);
* the context, before tokenizing: the prompt (the rendered conversation) of ``B``
  bytes has at least ``ceil(B / L)`` tokens, ``L`` the most bytes one token of the
  model's tokenizer covers (``models.token_bytes``; SmolLM2: 81); when that bound plus
  ``max_tokens`` already exceeds ``max_positions`` the answer is 400
  ``context_length_exceeded`` without tokenizing. Then the exact count, same check.
  (A tokenizer that proves no bound, e.g. a word-level one, is always tokenized. With
  SmolLM2 the bound refuses prompts over ``(8192 - max_tokens) * 81`` bytes: below the
  default body limit only for ``max_tokens`` over about 900.)
  Rendering and tokenizing run on a worker thread, never on the event loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM, Message
from fedbbpt_jax.core import import_plugins
from fedbbpt_jax.models.token_bytes import TokenLowerBound, why_unbounded
from fedbbpt_jax.serve.app import BODY_TIMEOUT_S, ClientGone, error_response, read_body
from fedbbpt_jax.serve.chat_batching import RequestBatcher
from fedbbpt_jax.serve.keys import AccessError, KeyStore

MAX_TOKENS_DEFAULT = 64
BODY_BYTES_PER_TOKEN = 64
JSON_OVERHEAD_BYTES = 64 * 1024


def default_max_request_bytes(max_positions: int) -> int:
  """The default body limit of a model with ``max_positions`` (the module docstring)."""
  return max_positions * BODY_BYTES_PER_TOKEN + JSON_OVERHEAD_BYTES


def _request_fields(body: object, model_name: str) -> tuple[list[dict], int]:
  """``(messages, max_tokens)`` of a chat request body, or a 400 naming the field."""
  bad = lambda msg: AccessError(400, "invalid_request", msg)
  if not isinstance(body, dict):
    raise bad("the body must be a JSON object")
  if body.get("model", model_name) != model_name:
    raise AccessError(404, "model_not_found",
                      f"model {body.get('model')!r} is not served here; GET /v1/models lists "
                      f"{model_name!r}")
  messages = body.get("messages")
  if not isinstance(messages, list) or not messages or not all(
      isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
      for m in messages):
    raise bad("'messages' must be a non-empty list of {'role': str, 'content': str}")
  max_tokens = body.get("max_tokens", body.get("max_completion_tokens", MAX_TOKENS_DEFAULT))
  if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
    raise bad(f"'max_tokens' must be an integer >= 1, got {max_tokens!r}")
  if body.get("temperature", 0) not in (0, 0.0):
    raise bad("only 'temperature': 0 (greedy decoding) is served")
  if body.get("n", 1) != 1:
    raise bad("only 'n': 1 is served")
  stream = body.get("stream", False)
  if not isinstance(stream, bool):
    raise bad(f"'stream' must be a boolean, got {stream!r}")
  if stream:
    raise bad("'stream': true is not served (answers come whole, not as server-sent "
              "events); send 'stream': false or leave it out")
  for i, m in enumerate(messages):
    try:
      for text in (m["role"], m["content"]):
        text.encode("utf-8")
    except UnicodeEncodeError:
      raise bad(f"messages[{i}] holds an unpaired surrogate escape (\\ud800-\\udfff), "
                "which is not Unicode text") from None
  return [{"role": m["role"], "content": m["content"]} for m in messages], max_tokens


def count_prompt_tokens(llm: LocalChatLLM, bound: TokenLowerBound | None,
                        messages: list[Message], max_tokens: int) -> int:
  """The prompt's token count, or a 400 when it cannot fit the context with
  ``max_tokens``: first on ``bound`` (no tokenizing), then on the exact count.

  Renders and tokenizes: run it on a worker thread, not the event loop.

  Raises:
    AccessError: 400 ``context_length_exceeded``.
  """
  prompt = llm.prompt(messages)
  room = llm.max_positions - max_tokens
  at_least = bound.min_tokens(prompt) if bound is not None else None
  if at_least is not None and at_least > room:
    raise AccessError(400, "context_length_exceeded",
                      f"prompt of at least {at_least} tokens ({len(prompt.encode('utf-8'))} "
                      f"bytes, at most {bound.max_bytes} a token) + max_tokens={max_tokens} "
                      f"exceeds the model's {llm.max_positions} positions")
  prompt_tokens = len(llm.encode(prompt))
  if prompt_tokens > room:
    raise AccessError(400, "context_length_exceeded",
                      f"prompt of {prompt_tokens} tokens + max_tokens={max_tokens} exceeds the "
                      f"model's {llm.max_positions} positions")
  return prompt_tokens


def create_chat_app(llm: LocalChatLLM, keys: KeyStore, max_batch: int = 32,
                    window_s: float = 0.01, max_request_bytes: int | None = None,
                    body_timeout_s: float | None = BODY_TIMEOUT_S) -> FastAPI:
  """The chat service's FastAPI app for ``llm`` (a ``LocalChatLLM``).

  Concurrent requests are answered together, up to ``max_batch`` arriving within
  ``window_s`` of each other (``chat_batching.RequestBatcher``, ``app.state.batcher``);
  ``max_batch=1`` answers one at a time. ``max_request_bytes`` (default
  ``default_max_request_bytes``) and ``body_timeout_s`` (None: no limit) limit the
  request body (see the module docstring); ``app.state.max_request_bytes`` holds the
  limit.
  """
  if max_request_bytes is not None and max_request_bytes < 1:
    raise ValueError(f"max_request_bytes={max_request_bytes} must be >= 1 (or None: default)")
  if body_timeout_s is not None and not body_timeout_s > 0:
    raise ValueError(f"body_timeout_s={body_timeout_s} must be > 0 (or None: no limit)")
  max_bytes = max_request_bytes or default_max_request_bytes(llm.max_positions)
  bound = llm.token_bound
  app = FastAPI(title=f"fedbbpt_jax chat service ({llm.name})")
  app.state.max_request_bytes = max_bytes
  batcher = RequestBatcher(llm, max_batch=max_batch, window_s=window_s)
  app.state.batcher = batcher

  @app.exception_handler(AccessError)
  async def access_error(request: Request, error: AccessError) -> JSONResponse:
    del request
    return error_response(error)

  @app.exception_handler(ClientGone)
  async def client_gone(request: Request, error: ClientGone) -> Response:
    del request, error
    return Response(status_code=400)  # nobody reads it: the server drops it unsent

  @app.get("/v1/models")
  async def models() -> dict:
    return {"object": "list", "data": [{"id": llm.name, "object": "model"}]}

  @app.get("/v1/usage")
  async def usage(request: Request) -> dict:
    return keys.usage(keys.authenticate(request.headers.get("authorization")))

  @app.post("/v1/chat/completions")
  async def completions(request: Request) -> dict:
    key = keys.authenticate(request.headers.get("authorization"))
    raw = await read_body(request, max_bytes, body_timeout_s)
    try:
      body = json.loads(raw)
    except ValueError:  # invalid JSON or not UTF-8
      raise AccessError(400, "invalid_request", "the body is not valid JSON") from None
    messages, max_tokens = _request_fields(body, llm.name)
    prompt_tokens = await run_in_threadpool(count_prompt_tokens, llm, bound, messages,
                                            max_tokens)
    # Reserved; the unused part comes back.
    keys.charge(key, prompt_tokens + max_tokens, unit="tokens")
    try:
      answer = await run_in_threadpool(batcher.submit, messages, max_tokens)
    except Exception:
      keys.refund(key, prompt_tokens + max_tokens)
      raise
    keys.give_back(key, max_tokens - answer.completion_tokens)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": llm.name,
            "choices": [{"index": 0, "finish_reason": answer.finish_reason,
                         "message": {"role": "assistant", "content": answer.text}}],
            "usage": {"prompt_tokens": answer.prompt_tokens,
                      "completion_tokens": answer.completion_tokens,
                      "total_tokens": answer.prompt_tokens + answer.completion_tokens}}

  return app


def main(argv: list[str] | None = None) -> None:
  """Builds the local LLM and serves it until interrupted."""
  parser = argparse.ArgumentParser(prog="python -m fedbbpt_jax.serve.chat",
                                   description="Serve a local causal LM as chat completions.")
  parser.add_argument("--model", default="smollm2-135m-instruct",
                      help="a name registered in BLACK_BOXES with the tag 'llm' (the bundled "
                           "smollm2-135m-instruct, or yours, with --imports), a .gguf file, "
                           "or a model folder "
                           "(config.json + model.safetensors + tokenizer.json)")
  parser.add_argument("--imports", default="",
                      help="comma-separated modules to import first (e.g. ones registering "
                           "an LLM in fedbbpt_jax.blackbox.BLACK_BOXES)")
  parser.add_argument("--name", default="", help="the model id clients send (default: --model)")
  parser.add_argument("--host", default="127.0.0.1")
  parser.add_argument("--port", type=int, default=8100)
  parser.add_argument("--keys", default="", help="JSON {key: budget in tokens or null}")
  parser.add_argument("--max_batch", type=int, default=32,
                      help="concurrent requests answered in one generation")
  parser.add_argument("--max_request_bytes", type=int, default=0,
                      help="body size limit (0 = max_positions * "
                           f"{BODY_BYTES_PER_TOKEN} + {JSON_OVERHEAD_BYTES})")
  parser.add_argument("--body_timeout_s", type=float, default=BODY_TIMEOUT_S,
                      help="seconds a request body may take to arrive (408 after)")
  parser.add_argument("--ssl_certfile", default="")
  parser.add_argument("--ssl_keyfile", default="")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  if args.max_request_bytes < 0:
    parser.error(f"--max_request_bytes={args.max_request_bytes} must be >= 0")
  if not args.body_timeout_s > 0:
    parser.error(f"--body_timeout_s={args.body_timeout_s} must be > 0")
  import uvicorn  # pylint: disable=import-outside-toplevel

  import_plugins(args.imports)
  llm = LocalChatLLM(args.model, name=args.name or None)
  tls = ({"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
         if args.ssl_certfile else {})
  print(f"serving {llm.name} chat completions on {'https' if tls else 'http'}://{args.host}:"
        f"{args.port}", flush=True)
  app = create_chat_app(llm, KeyStore.from_file(args.keys or None), max_batch=args.max_batch,
                        max_request_bytes=args.max_request_bytes or None,
                        body_timeout_s=args.body_timeout_s)
  bound = llm.token_bound
  print(f"body limit {app.state.max_request_bytes} bytes; context check before tokenizing: "
        + (f"at most {bound.max_bytes} bytes a token" if bound else
           f"none ({why_unbounded(llm.lm.tokenizer)})"), flush=True)
  uvicorn.run(app, host=args.host,
              port=args.port, log_level="warning", **tls)


if __name__ == "__main__":
  main()
