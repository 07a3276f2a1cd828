"""A node's long-lived worker: the experiment built once, the client step compiled once.

A SuperNode starts a fresh ClientApp process for every message, so a ClientApp that
trained itself would import JAX, build the experiment and compile ``client_update``
every round. Instead it forwards the message to this process (``worker_client.py``),
which runs ``node.train_content`` (the very code of the in-process path, its experiments
cached in ``node._BUILT``) and sends the reply back (``worker_protocol.py``: loopback TCP,
a mutual HMAC challenge on the secret in its 0600 ``worker.json``).

The first train message of a node starts it, detached in a session of its own. It
serves each connection in a thread (a straggling request does not hold up the next),
writes its output to ``worker.log`` and exits after ``--idle-seconds`` without a
request, when the SuperNode it serves (``--watch-pid``) is gone, or on SIGTERM; it
removes its ``worker.json`` when it exits.

Example (what ``worker_client`` runs)::

    python -m fedbbpt_jax.flower.worker --dir /var/lib/fedbbpt/worker-2 --idle-seconds 600
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Sequence

from fedbbpt_jax.flower import messages as M
from fedbbpt_jax.flower import worker_protocol as W

POLL_SECONDS = 0.2
HANDSHAKE_SECONDS = 60.0  # to authenticate and send the request, once connected
NODE_MODULE = "fedbbpt_jax.flower.node"


def log(text: str) -> None:
  print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} worker {os.getpid()}: {text}", flush=True)


class Worker:
  """The serving state: the listening socket, the secret, the requests in flight."""

  def __init__(self, directory: str, idle_seconds: float,
               watch: tuple[int, int] | None = None):
    self.directory, self.idle_seconds, self.watch = directory, idle_seconds, watch
    self.listener = socket.create_server((W.HOST, 0))
    self.secret = W.new_secret()
    self.lock = threading.Lock()
    self.active, self.last_request, self.trained, self.training = 0, time.monotonic(), 0, 0
    self.info = {"pid": os.getpid(), "start": W.process_start(os.getpid()),
                 "port": self.listener.getsockname()[1], "secret": self.secret,
                 "watch-pid": watch[0] if watch else None,
                 "watch-start": watch[1] if watch else None}

  def publish(self) -> None:
    """Writes ``worker.json``: from now on ClientApps find this worker."""
    W.write_private_json(os.path.join(self.directory, W.INFO), self.info)
    watching = f"; serves SuperNode pid {self.watch[0]}" if self.watch else ""
    log(f"listening on {W.HOST}:{self.info['port']}; exits after {self.idle_seconds:g} s "
        f"idle{watching}")

  def exit(self, reason: str) -> None:
    """Removes ``worker.json`` (if it still names this worker) and exits at once."""
    if (W.read_info(self.directory) or {}).get("pid") == os.getpid():
      try:
        os.remove(os.path.join(self.directory, W.INFO))
      except OSError:
        pass
    log(f"exiting: {reason}")
    os._exit(0)  # pylint: disable=protected-access  (threads may be mid-request)

  def watchdog(self) -> None:
    while True:
      time.sleep(POLL_SECONDS)
      if self.watch and not W.running(*self.watch):
        self.exit(f"the SuperNode it served (pid {self.watch[0]}) is gone")
      with self.lock:
        idle = time.monotonic() - self.last_request
        if self.active == 0 and idle >= self.idle_seconds:
          self.exit(f"no request for {idle:.0f} s")

  def serve_forever(self) -> None:
    threading.Thread(target=self.watchdog, daemon=True).start()
    while True:
      conn, _ = self.listener.accept()
      with self.lock:
        self.active += 1
      threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

  def handle(self, conn: socket.socket) -> None:
    """One connection: the challenge, one request, its reply."""
    try:
      with conn:
        conn.settimeout(HANDSHAKE_SECONDS)
        if not W.authenticate_client(conn, self.secret):
          log("refused a connection: it does not hold the secret")
          return
        header, body = W.recv_frame(conn)
        conn.settimeout(None)
        try:
          reply = self.answer(header, body)
        except Exception as ex:  # pylint: disable=broad-except  (a bug here: still answer)
          log(f"the request {header.get('op')!r} failed:\n{traceback.format_exc()}")
          reply = {"ok": False, "error": W.describe_exception(ex)}, b""
        W.send_frame(conn, *reply)
    except (OSError, EOFError, ValueError) as e:
      log(f"a connection failed: {type(e).__name__}: {e}")
    finally:
      with self.lock:
        self.active -= 1
        self.last_request = time.monotonic()

  def answer(self, header: dict, body: bytes) -> tuple[dict, bytes]:
    op = header.get("op")
    if op == "status":
      builds = getattr(sys.modules.get(NODE_MODULE), "builds", None)  # None: not imported yet
      with self.lock:
        return {"ok": True, "pid": os.getpid(), "trained": self.trained,
                "training": self.training, "builds": builds() if builds else 0}, b""
    if op not in ("train", "evaluate", "setup"):
      return {"ok": False, "error": W.describe_exception(ValueError(
          f"the worker has no operation {op!r}"))}, b""
    t0 = time.time()
    with self.lock:
      self.training += 1
    try:
      from fedbbpt_jax.flower import node  # pylint: disable=import-outside-toplevel
      content = W.decode_records(body)
      built = node.builds()
      if op == "evaluate":
        from fedbbpt_jax.flower import node_evaluation  # pylint: disable=import-outside-toplevel
        reply = node_evaluation.evaluate_content(content, header["node-config"])
      elif op == "setup":
        from fedbbpt_jax.flower import node_setup  # pylint: disable=import-outside-toplevel
        reply = node_setup.setup_content(content, header["node-config"])
      else:
        reply = node.train_content(content, header["node-config"])
    except BaseException as ex:  # pylint: disable=broad-except  (goes to the server)
      log(f"the request failed after {time.time() - t0:.1f} s:\n{traceback.format_exc()}")
      return {"ok": False, "error": W.describe_exception(ex)}, b""
    finally:
      with self.lock:
        self.training -= 1
    built = " (built the experiment)" if node.builds() > built else ""
    if op == "setup":
      log(f"answered set-up statistic {content[M.RUN][M.STATISTIC]!r} in "
          f"{time.time() - t0:.1f} s{built}")
      return {"ok": True, "pid": os.getpid()}, W.encode_records(reply)
    if op == "evaluate":
      log(f"evaluated after round {content[M.RUN][M.ROUND]} in {time.time() - t0:.1f} s{built}")
      return {"ok": True, "pid": os.getpid()}, W.encode_records(reply)
    with self.lock:
      self.trained += 1
    log(f"trained round {content[M.RUN][M.ROUND]} in {time.time() - t0:.1f} s{built}")
    return {"ok": True, "pid": os.getpid()}, W.encode_records(reply)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--dir", required=True, help="the worker's folder (worker.json)")
  parser.add_argument("--idle-seconds", type=float, required=True)
  parser.add_argument("--watch-pid", type=int, help="exit when this process (the SuperNode) "
                      "is gone")
  parser.add_argument("--watch-start", type=int, help="its start time (/proc/<pid>/stat)")
  args = parser.parse_args(argv)
  watch = (args.watch_pid, args.watch_start) if args.watch_pid is not None else None
  worker = Worker(args.dir, args.idle_seconds, watch)
  signal.signal(signal.SIGTERM, lambda *_: worker.exit("SIGTERM"))
  worker.publish()
  worker.serve_forever()


if __name__ == "__main__":
  main()
