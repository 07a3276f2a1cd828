"""An OpenAI-compatible chat endpoint serving a local causal LM (a real HTTP service
for the instruction track's black-box LLM, on loopback in tests).

    python -m fedbbpt_jax.serve.chat [--model=smollm2-135m-instruct] --port=8100 \\
        [--keys=keys.json] [--ssl_certfile=cert.pem --ssl_keyfile=key.pem]

Endpoints (errors are JSON ``{"error": code, "message": text, ...}``):

* ``GET /v1/models``: ``{"object": "list", "data": [{"id": name, "object": "model"}]}``.
* ``POST /v1/chat/completions``: ``{"model", "messages": [{"role", "content"}],
  "max_tokens" (default 64), "temperature" (0 only: greedy), "n" (1 only)}`` ->
  ``{"id", "object": "chat.completion", "created", "model", "choices": [{"index": 0,
  "message": {"role": "assistant", "content"}, "finish_reason"}], "usage":
  {"prompt_tokens", "completion_tokens", "total_tokens"}}``. Budgets count tokens:
  ``prompt + max_tokens`` is reserved before generating (402 if the key has less
  left; nothing generated) and the unused part is given back.
* ``GET /v1/usage``: the calling key's ``{used (tokens), budget, remaining, requests,
  refused_requests}``.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fedbbpt_jax.blackbox.llm_local import ChatLLM
from fedbbpt_jax.serve.chat_batching import RequestBatcher
from fedbbpt_jax.serve.app import error_response
from fedbbpt_jax.serve.keys import AccessError, KeyStore

MAX_TOKENS_DEFAULT = 64


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
  return [{"role": m["role"], "content": m["content"]} for m in messages], max_tokens


def create_chat_app(llm: ChatLLM, keys: KeyStore, max_batch: int = 32,
                    window_s: float = 0.01) -> FastAPI:
  """The chat service's FastAPI app for ``llm`` (a ``LocalChatLLM``).

  Concurrent requests are answered together, up to ``max_batch`` arriving within
  ``window_s`` of each other (``chat_batching.RequestBatcher``, ``app.state.batcher``);
  ``max_batch=1`` answers one at a time.
  """
  app = FastAPI(title=f"fedbbpt_jax chat service ({llm.name})")
  batcher = RequestBatcher(llm, max_batch=max_batch, window_s=window_s)
  app.state.batcher = batcher

  @app.exception_handler(AccessError)
  async def access_error(request: Request, error: AccessError) -> JSONResponse:
    del request
    return error_response(error)

  @app.get("/v1/models")
  async def models() -> dict:
    return {"object": "list", "data": [{"id": llm.name, "object": "model"}]}

  @app.get("/v1/usage")
  async def usage(request: Request) -> dict:
    return keys.usage(keys.authenticate(request.headers.get("authorization")))

  @app.post("/v1/chat/completions")
  async def completions(request: Request) -> dict:
    key = keys.authenticate(request.headers.get("authorization"))
    try:
      body = await request.json()
    except ValueError:
      raise AccessError(400, "invalid_request", "the body is not valid JSON") from None
    messages, max_tokens = _request_fields(body, llm.name)
    prompt_tokens = len(llm.encode(llm.prompt(messages)))
    if prompt_tokens + max_tokens > llm.max_positions:
      raise AccessError(400, "context_length_exceeded",
                        f"prompt of {prompt_tokens} tokens + max_tokens={max_tokens} exceeds the "
                        f"model's {llm.max_positions} positions")
    keys.charge(key, prompt_tokens + max_tokens)  # reserved; the unused part comes back
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
                      help="a bundled model name, a .gguf file, or a model folder "
                           "(config.json + model.safetensors + tokenizer.json)")
  parser.add_argument("--name", default="", help="the model id clients send (default: --model)")
  parser.add_argument("--host", default="127.0.0.1")
  parser.add_argument("--port", type=int, default=8100)
  parser.add_argument("--keys", default="", help="JSON {key: budget in tokens or null}")
  parser.add_argument("--max_batch", type=int, default=32,
                      help="concurrent requests answered in one generation")
  parser.add_argument("--ssl_certfile", default="")
  parser.add_argument("--ssl_keyfile", default="")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  import uvicorn  # pylint: disable=import-outside-toplevel

  from fedbbpt_jax.blackbox.llm_local import LocalChatLLM  # pylint: disable=import-outside-toplevel
  llm = LocalChatLLM(args.model, name=args.name or None)
  tls = ({"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
         if args.ssl_certfile else {})
  print(f"serving {llm.name} chat completions on {'https' if tls else 'http'}://{args.host}:"
        f"{args.port}", flush=True)
  app = create_chat_app(llm, KeyStore.from_file(args.keys or None), max_batch=args.max_batch)
  uvicorn.run(app, host=args.host,
              port=args.port, log_level="warning", **tls)


if __name__ == "__main__":
  main()
