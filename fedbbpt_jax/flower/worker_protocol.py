"""How a ClientApp process and its node's worker talk (``worker.py``, ``worker_client.py``).

Transport: TCP on 127.0.0.1 only. Files: the worker's folder
``<node workdir>/worker-<partition-id>`` (mode 0700) holds ``worker.json`` (mode 0600:
the worker's pid and start time, its port, its secret, the SuperNode it serves),
``worker.log`` (its stdout and stderr) and ``lock`` (held by a ClientApp while it finds or
starts the worker).

A connection starts with a mutual HMAC-SHA256 challenge on the secret: the worker sends a
nonce, the client answers its HMAC and a nonce of its own, the worker answers that one's
HMAC; a side that gets a wrong answer closes the connection. So only a process that can
read ``worker.json`` drives the worker, and a client only talks to the worker that wrote it.

Then one request and one reply, each a frame: lengths (``!IQ``), a JSON header and a
binary body. Requests: ``{"op": "train", "node-config": {...}}`` with the train message's
``RecordDict`` (Flower's protobuf) as body, or ``{"op": "status"}``. Replies:
``{"ok": true, "pid": ...}`` with the reply's ``RecordDict`` (train) or the status in the
header, or ``{"ok": false, "error": {"module", "qualname", "message"}}``: what the
request raised, rebuilt by ``rebuild_exception`` so that Flower's error reply reads as
it does when the ClientApp process trains itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import struct
import sys
from typing import Any

from flwr.app import RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

HOST = "127.0.0.1"
INFO, LOG, LOCK = "worker.json", "worker.log", "lock"
NONCE_BYTES = 32
_LENGTHS = struct.Struct("!IQ")
_MAX_HEADER = 1 << 24


class WorkerError(RuntimeError):
  """The node's worker could not be reached, or ended before it replied."""


class WorkerAuthError(WorkerError):
  """The other side of a connection does not hold this worker's secret."""


def worker_dir(workdir: str, partition_id: int) -> str:
  """The folder of the worker serving ``partition_id`` from node workdir ``workdir``."""
  return os.path.join(workdir, f"worker-{partition_id}")


def process_start(pid: int) -> int | None:
  """When ``pid`` started (clock ticks since boot, ``/proc``); None when no such process
  runs (a zombie has exited). With the pid it names one process, whoever reuses the pid."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None
  return None if fields[0] in ("Z", "X") else int(fields[19])


def running(pid: int | None, start: int | None) -> bool:
  """Whether the process ``pid`` that started at ``start`` still runs."""
  return pid is not None and start is not None and process_start(pid) == start


def write_private_json(path: str, value: dict) -> None:
  """Writes ``value`` to ``path`` atomically, readable by the owner only (mode 0600)."""
  tmp = f"{path}.{os.getpid()}.tmp"
  with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump(value, f)
  os.chmod(tmp, 0o600)
  os.replace(tmp, path)


def read_info(directory: str) -> dict | None:
  """``worker.json`` of ``directory``; None when absent or unreadable (a worker that was
  killed while writing it)."""
  try:
    with open(os.path.join(directory, INFO)) as f:
      info = json.load(f)
  except (OSError, ValueError):
    return None
  return info if isinstance(info, dict) else None


def new_secret() -> str:
  return secrets.token_hex(32)


def _digest(secret: str, role: bytes, nonce: bytes) -> bytes:
  return hmac.new(bytes.fromhex(secret), role + nonce, hashlib.sha256).digest()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
  chunks, left = [], n
  while left:
    chunk = sock.recv(min(left, 1 << 20))
    if not chunk:
      raise EOFError(f"the connection closed {n - left} of {n} bytes into a read")
    chunks.append(chunk)
    left -= len(chunk)
  return b"".join(chunks)


def authenticate_client(sock: socket.socket, secret: str) -> bool:
  """The worker's side of the challenge; whether the client holds ``secret``."""
  mine = secrets.token_bytes(NONCE_BYTES)
  sock.sendall(mine)
  answer = _recv_exact(sock, 32 + NONCE_BYTES)
  if not hmac.compare_digest(answer[:32], _digest(secret, b"client", mine)):
    return False
  sock.sendall(_digest(secret, b"worker", answer[32:]))
  return True


def authenticate_worker(sock: socket.socket, secret: str) -> None:
  """The client's side of the challenge.

  Raises:
    WorkerAuthError: the worker closed the connection (it refused the secret) or does
      not answer with it.
  """
  try:
    challenge = _recv_exact(sock, NONCE_BYTES)
    mine = secrets.token_bytes(NONCE_BYTES)
    sock.sendall(_digest(secret, b"client", challenge) + mine)
    answer = _recv_exact(sock, 32)
  except (EOFError, ConnectionError) as e:
    raise WorkerAuthError(f"the worker refused the connection: wrong secret ({e})") from None
  if not hmac.compare_digest(answer, _digest(secret, b"worker", mine)):
    raise WorkerAuthError("the process that answered does not hold the worker's secret")


def send_frame(sock: socket.socket, header: dict, body: bytes = b"") -> None:
  head = json.dumps(header).encode()
  sock.sendall(_LENGTHS.pack(len(head), len(body)) + head)
  if body:
    sock.sendall(body)


def recv_frame(sock: socket.socket) -> tuple[dict, bytes]:
  """One frame: its header and body (``EOFError`` when the other side closed)."""
  head_len, body_len = _LENGTHS.unpack(_recv_exact(sock, _LENGTHS.size))
  if head_len > _MAX_HEADER:
    raise ValueError(f"a frame header of {head_len} bytes (at most {_MAX_HEADER})")
  header = json.loads(_recv_exact(sock, head_len))
  return header, _recv_exact(sock, body_len)


def encode_records(records: RecordDict) -> bytes:
  return recorddict_to_proto(records).SerializeToString()


def decode_records(data: bytes) -> RecordDict:
  return recorddict_from_proto(ProtoRecordDict.FromString(data))


def describe_exception(ex: BaseException) -> dict:
  """What ``rebuild_exception`` needs: the class's module and qualified name, the text."""
  return {"module": type(ex).__module__, "qualname": type(ex).__qualname__,
          "message": str(ex)}


def rebuild_exception(error: dict) -> BaseException:
  """An exception whose class prints as the original's (``<class 'module.qualname'>``)
  and whose text is the original's: the class itself when this process has loaded it
  and its text comes from its arguments, else a stand-in subclass (of the class, or of
  ``Exception``) that prints the same. Imports nothing."""
  module, qualname, message = error["module"], error["qualname"], str(error["message"])
  cls: Any = sys.modules.get(module)
  for part in qualname.split("."):
    cls = getattr(cls, part, None)
  if not (isinstance(cls, type) and issubclass(cls, Exception)):
    cls = None
  if cls is not None:
    ex = cls.__new__(cls)
    ex.args = (message,)
    try:
      if str(ex) == message:
        return ex
    except Exception:  # pylint: disable=broad-except
      pass
  stand_in = type(qualname.rsplit(".", 1)[-1], (cls or Exception,),
                  {"__module__": module, "__qualname__": qualname,
                   "__str__": lambda self: message})
  ex = stand_in.__new__(stand_in)
  ex.args = (message,)
  return ex
