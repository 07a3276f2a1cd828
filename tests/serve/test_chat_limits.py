"""The chat service's limits over real HTTP on loopback (uvicorn in a thread): body size
(413, never read whole), body timeout (408), the context bound checked before tokenizing
(the tokenizer is not called), tokenizing off the event loop, ``stream`` refused, and a
402 that counts tokens. The model is a tiny GPT-2 made in the test with a byte-level BPE
tokenizer (one token covers at most 13 bytes), its tokenizer wrapped to record calls."""

import asyncio
import dataclasses
import json
import select
import socket
import threading

import httpx
import pytest

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.models.causal_lm import load_causal_lm
from fedbbpt_jax.serve.chat import create_chat_app
from fedbbpt_jax.serve.keys import KeyStore
from tests.helpers.threaded_server import serving
from tests.helpers.tiny_gpt2 import CONFIG, write_tiny_gpt2
from tests.helpers.tiny_llama import tiny_tokenizer

POSITIONS = CONFIG["n_positions"]  # 96
LIMIT = POSITIONS * 64 + 64 * 1024  # the default body limit: 71680 bytes
ONE = [{"role": "user", "content": "the cat sat on the mat"}]


class RecordingTokenizer:
  """The real tokenizer; ``encode`` records its calling thread and whether that thread
  runs an event loop."""

  def __init__(self, tokenizer):
    self._tokenizer = tokenizer
    self.calls = []

  def encode(self, *args, **kwargs):
    try:
      asyncio.get_running_loop()
      on_loop = True
    except RuntimeError:
      on_loop = False
    thread = threading.current_thread()
    self.calls.append((thread.ident, thread.name, on_loop))
    return self._tokenizer.encode(*args, **kwargs)

  def __getattr__(self, name):
    return getattr(self._tokenizer, name)


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
  tokenizer = tiny_tokenizer()
  folder = write_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2_bpe"),
                           dict(CONFIG, vocab_size=tokenizer.get_vocab_size()),
                           tokenizer=tokenizer)
  lm = load_causal_lm(folder)
  recorder = RecordingTokenizer(lm.tokenizer)
  llm = LocalChatLLM(dataclasses.replace(lm, tokenizer=recorder))
  keys = KeyStore({"team-key": None, "small-key": 40, "stalled-key": 100})
  app = create_chat_app(llm, keys, body_timeout_s=1.0)

  @app.get("/test/loop-thread")  # a probe: async handlers run on the event loop's thread
  async def loop_thread() -> dict:
    return {"ident": threading.get_ident()}

  with serving(app) as url:
    yield {"url": url, "llm": llm, "lm": lm, "recorder": recorder, "keys": keys, "app": app,
           "port": int(url.rsplit(":", 1)[1])}


def post(chat, body, key="team-key"):
  return httpx.post(chat["url"] + "/v1/chat/completions", json=body, timeout=60,
                    headers={"Authorization": f"Bearer {key}"})


def used(chat, key):
  usage = chat["keys"].usage(key)
  return usage["used"], usage["requests"]


def read_response(sock):
  """``(status, headers, body)`` of the one response a server sends and then closes."""
  data = b""
  while chunk := sock.recv(65536):
    data += chunk
  head, _, body = data.partition(b"\r\n\r\n")
  lines = head.decode("latin-1").split("\r\n")
  return int(lines[0].split()[1]), dict(line.lower().split(": ", 1) for line in lines[1:]), body


def test_a_request_is_tokenized_on_a_worker_thread_and_charged_exactly(chat):
  recorder, before = chat["recorder"], used(chat, "team-key")
  calls = len(recorder.calls)
  r = post(chat, {"messages": ONE, "max_tokens": 4, "stream": False})
  assert r.status_code == 200, r.text
  usage = r.json()["usage"]
  prompt = chat["llm"].prompt(ONE)
  assert usage["prompt_tokens"] == len(chat["lm"].tokenizer.encode(prompt).ids) == 24
  assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
  assert used(chat, "team-key") == (before[0] + usage["total_tokens"], before[1] + 1)
  expected = chat["llm"].complete([ONE], max_tokens=4)[0]
  assert r.json()["choices"][0]["message"]["content"] == expected.text
  # Two encodes: the service's count (a threadpool worker), the generation (the batcher).
  loop = httpx.get(chat["url"] + "/test/loop-thread").json()["ident"]
  request_calls = recorder.calls[calls:calls + 2]
  assert [(name, on_loop) for _, name, on_loop in request_calls] == [
      ("AnyIO worker thread", False), ("chat-batcher", False)]
  assert loop not in [ident for ident, _, _ in request_calls]


def test_a_prompt_over_the_bound_is_refused_without_tokenizing(chat):
  recorder, before = chat["recorder"], used(chat, "team-key")
  calls = len(recorder.calls)
  # 'user: ' + 1600 bytes + '\nassistant:' = 1617 bytes >= ceil(1617 / 13) = 125 tokens.
  long = [{"role": "user", "content": "the cat " * 200}]
  r = post(chat, {"messages": long, "max_tokens": 4})
  assert r.status_code == 400
  assert r.json() == {"error": "context_length_exceeded", "message": "prompt of at least 125 "
                      "tokens (1617 bytes, at most 13 a token) + max_tokens=4 exceeds the "
                      "model's 96 positions"}
  assert len(recorder.calls) == calls            # the tokenizer was not called
  assert used(chat, "team-key") == before        # nothing charged
  # Within the bound but over the context: tokenized once, refused on the exact count.
  medium = [{"role": "user", "content": "the cat " * 60}]  # 497 bytes: >= 39 tokens
  r = post(chat, {"messages": medium, "max_tokens": 4})
  exact = len(chat["lm"].tokenizer.encode(chat["llm"].prompt(medium)).ids)
  assert exact == 194 and len(recorder.calls) == calls + 1
  assert r.status_code == 400 and r.json()["message"] == (
      "prompt of 194 tokens + max_tokens=4 exceeds the model's 96 positions")
  assert used(chat, "team-key") == before


def test_a_body_over_the_limit_is_a_413_without_being_read_whole(chat):
  assert chat["app"].state.max_request_bytes == LIMIT == 71680
  calls, before = len(chat["recorder"].calls), used(chat, "team-key")
  head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer team-key"
          b"\r\nContent-Type: application/json\r\n")
  expected = {"error": "request_too_large",
              "message": f"request body exceeds the limit of {LIMIT} bytes"}
  # A declared 50 MB body: refused on its Content-Length after 1000 bytes were sent.
  with socket.create_connection(("127.0.0.1", chat["port"]), timeout=30) as sock:
    sock.sendall(head + b"Content-Length: 50000000\r\n\r\n" + b'{"messages": "' + b"x" * 986)
    status, headers, body = read_response(sock)
  assert (status, headers["connection"], json.loads(body)) == (413, "close", expected)
  # A chunked body (no length declared): refused once the bytes pass the limit, before
  # the body's last chunk was sent.
  with socket.create_connection(("127.0.0.1", chat["port"]), timeout=30) as sock:
    chunk = b"x" * 16384
    sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"4000\r\n" + chunk + b"\r\n"
                 + (b"4000\r\n" + chunk + b"\r\n") * 4)  # 80 KiB, no terminating chunk
    status, headers, body = read_response(sock)
  assert (status, headers["connection"], json.loads(body)) == (413, "close", expected)
  assert len(chat["recorder"].calls) == calls and used(chat, "team-key") == before


def test_a_body_that_stops_mid_way_is_a_408_charged_nothing(chat):
  with socket.create_connection(("127.0.0.1", chat["port"]), timeout=30) as stalled:
    stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: test\r\nAuthorization: "
                    b"Bearer stalled-key\r\nContent-Length: 1000\r\n\r\n" + b'{"messages"')
    assert httpx.get(chat["url"] + "/v1/models").status_code == 200  # others are answered
    assert select.select([stalled], [], [], 0)[0] == []               # while it waits
    status, headers, body = read_response(stalled)
  assert (status, headers["connection"]) == (408, "close")
  assert json.loads(body) == {"error": "request_timeout", "message": "the request body did not "
                              "arrive within 1 s (got 11 of 1000 bytes); nothing was charged"}
  assert used(chat, "stalled-key") == (0, 0)


@pytest.mark.parametrize("stream,message", [
    (True, "'stream': true is not served (answers come whole, not as server-sent events); "
           "send 'stream': false or leave it out"),
    ("yes", "'stream' must be a boolean, got 'yes'"),
])
def test_stream_is_refused_naming_the_field(chat, stream, message):
  before = used(chat, "team-key")
  r = post(chat, {"messages": ONE, "max_tokens": 4, "stream": stream})
  assert (r.status_code, r.json()) == (400, {"error": "invalid_request", "message": message})
  assert used(chat, "team-key") == before


def test_an_unpaired_surrogate_is_refused_naming_the_message(chat):
  body = b'{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "\\ud800"}]}'
  r = httpx.post(chat["url"] + "/v1/chat/completions", content=body,
                 headers={"Authorization": "Bearer team-key", "Content-Type": "application/json"})
  assert r.status_code == 400 and r.json()["message"] == (
      "messages[1] holds an unpaired surrogate escape (\\ud800-\\udfff), which is not "
      "Unicode text")


def test_a_refused_budget_counts_tokens(chat):
  r = post(chat, {"messages": ONE, "max_tokens": 17}, key="small-key")   # 24 + 17 > 40
  assert r.status_code == 402
  assert r.json() == {"error": "budget_exceeded", "message": "query budget spent: key 'smal...' "
                      "has used 0 of 40 tokens; this request of 41 tokens needs more than the 40 "
                      "left (refused whole, nothing charged)", "used": 0, "budget": 40,
                      "remaining": 40, "requested": 41, "unit": "tokens"}
