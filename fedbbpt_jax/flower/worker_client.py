"""The ClientApp's side of a node's worker (``worker.py``): find it, start it, ask it.

``train_reply`` is what the ClientApp's train handler calls. With the node config's
``worker`` on (``"auto"``, the default, turns it on in the per-message ``flwr-clientapp``
processes a SuperNode starts) it forwards the message's content to the node's worker and
returns the worker's reply; a request that raised in the worker raises here, with the
same class name and text (so Flower's error reply to the server reads as it does when the
ClientApp trains itself); with ``worker=false`` it trains in this process
(``node.train_reply``).

Finding the worker: under an exclusive lock on ``<worker dir>/lock`` (so two ClientApps
never start two workers), ``worker.json`` names the worker; one whose process is gone
(pid and start time), whose SuperNode is gone, or that does not answer the challenge is
stopped, its file removed, and a new one started and waited for.

Example::

    reply = train_reply(message, context.node_config)
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import math
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, Mapping

from flwr.app import Message

from fedbbpt_jax.flower import worker_protocol as W
from fedbbpt_jax.flower.settings import NodeSettings, node_settings

CONNECT_SECONDS = 30.0  # to connect and pass the challenge
START_SECONDS = 60.0  # for a new worker to listen (Python, Flower's imports; no JAX yet)
DEFAULT_REPLY_SECONDS = 3600.0  # a message without a deadline
MIN_REPLY_SECONDS = 60.0  # however close the message's deadline (clocks may differ)
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_STARTED: list[subprocess.Popen] = []  # workers this process started (reaped when done)


def per_message_process() -> bool:
  """Whether this process is one Flower started for a single message (``flwr-clientapp``)."""
  return os.path.basename(sys.argv[0]) == "flwr-clientapp"


def use_worker(node: NodeSettings) -> bool:
  return node.worker == "on" or (node.worker == "auto" and per_message_process())


def train_reply(message: Message, node_config: Mapping[str, Any]) -> Message:
  """The reply to a train message: from the node's worker, or computed here
  (``worker=false``, or ``"auto"`` outside a per-message process).

  Raises:
    WorkerError: the worker could not be started or reached, sent no reply in time, or
      ended before it replied (each naming the worker's log).
    Exception: what the request raised in the worker (same class name and text).
  """
  def here(message, node_config):
    from fedbbpt_jax.flower import node as in_process  # pylint: disable=import-outside-toplevel
    return in_process.train_reply(message, node_config)
  return worker_reply(message, node_config, "train", here)


def evaluate_reply(message: Message, node_config: Mapping[str, Any]) -> Message:
  """The reply to an evaluate message, from the node's worker like ``train_reply`` (the
  worker's built experiment and compiled evaluation reused), or computed here."""
  def here(message, node_config):
    from fedbbpt_jax.flower import node_evaluation  # pylint: disable=import-outside-toplevel
    return node_evaluation.evaluate_reply(message, node_config)
  return worker_reply(message, node_config, "evaluate", here)


def setup_reply(message: Message, node_config: Mapping[str, Any]) -> Message:
  """The reply to a set-up request, from the node's worker like ``train_reply`` (its built
  experiment reused), or computed here."""
  def here(message, node_config):
    from fedbbpt_jax.flower import node_setup  # pylint: disable=import-outside-toplevel
    return node_setup.setup_reply(message, node_config)
  return worker_reply(message, node_config, "setup", here)


def worker_reply(message: Message, node_config: Mapping[str, Any], op: str,
                 here: Callable[[Message, Mapping[str, Any]], Message]) -> Message:
  """``message``'s reply from the node's worker (operation ``op``), or ``here(message,
  node_config)`` in this process when the node runs no worker."""
  if not use_worker(node_settings(node_config)):
    return here(message, node_config)
  _, body = request(node_settings(node_config), {"op": op, "node-config": dict(node_config)},
                    W.encode_records(message.content), reply_seconds(message))
  return Message(W.decode_records(body), reply_to=message)


def reply_seconds(message: Message) -> float:
  """How long to wait for the worker's reply: until the message expires (its creation
  time plus its time to live), at least ``MIN_REPLY_SECONDS``."""
  try:
    left = float(message.metadata.created_at) + float(message.metadata.ttl) - time.time()
  except (AttributeError, TypeError, ValueError):
    left = math.nan
  return max(left, MIN_REPLY_SECONDS) if math.isfinite(left) else DEFAULT_REPLY_SECONDS


def request(node: NodeSettings, header: dict, body: bytes = b"",
            timeout: float = DEFAULT_REPLY_SECONDS) -> tuple[dict, bytes]:
  """One request to the node's worker (started if none runs); its reply.

  Raises:
    WorkerError: as ``train_reply``; the request's own exception when it raised.
  """
  directory = W.worker_dir(node.workdir, node.partition_id)
  log_path = os.path.join(directory, W.LOG)
  sock, info = connect(node)
  with sock:
    try:
      sock.settimeout(timeout)
      W.send_frame(sock, header, body)
      reply, reply_body = W.recv_frame(sock)
    except (socket.timeout, TimeoutError):
      raise W.WorkerError(f"the node's worker (pid {info['pid']}) sent no reply in "
                          f"{timeout:.0f} s; its log: {log_path}") from None
    except (EOFError, OSError):
      raise W.WorkerError(f"the node's worker (pid {info['pid']}) ended before it replied; "
                          f"its log: {log_path}") from None
  if not reply.get("ok"):
    raise W.rebuild_exception(reply["error"])
  return reply, reply_body


def connect(node: NodeSettings) -> tuple[socket.socket, dict]:
  """An authenticated connection to the node's worker, and its ``worker.json``; starts a
  worker when none answers."""
  directory = W.worker_dir(node.workdir, node.partition_id)
  os.makedirs(directory, mode=0o700, exist_ok=True)
  os.chmod(directory, 0o700)
  with locked(os.path.join(directory, W.LOCK), START_SECONDS + 2 * CONNECT_SECONDS):
    info = W.read_info(directory)
    if info is not None and serving(info):
      try:
        return open_connection(info), info
      except (OSError, EOFError, W.WorkerAuthError):
        pass  # hung, or exiting: replaced below
    stop_worker(directory)
    info = start_worker(node, directory)
    return open_connection(info), info


def serving(info: Mapping[str, Any]) -> bool:
  """Whether the worker ``info`` names runs, and so does the SuperNode it serves."""
  watched = info.get("watch-pid") is None or W.running(info.get("watch-pid"),
                                                       info.get("watch-start"))
  return W.running(info.get("pid"), info.get("start")) and watched


def open_connection(info: Mapping[str, Any]) -> socket.socket:
  sock = socket.create_connection((W.HOST, int(info["port"])), timeout=CONNECT_SECONDS)
  try:
    W.authenticate_worker(sock, str(info["secret"]))
  except BaseException:
    sock.close()
    raise
  return sock


@contextlib.contextmanager
def locked(path: str, timeout: float) -> Iterator[None]:
  """Holds an exclusive ``flock`` on ``path`` (created 0600) for the block.

  Raises:
    WorkerError: another process held it for ``timeout`` seconds.
  """
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
  try:
    deadline = time.monotonic() + timeout
    while True:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
      except BlockingIOError:
        if time.monotonic() >= deadline:
          raise W.WorkerError(f"another ClientApp held the worker's lock {path} for "
                              f"{timeout:g} s") from None
        time.sleep(0.05)
    yield
  finally:
    os.close(fd)  # releases the lock


def supernode() -> tuple[int, int] | None:
  """The SuperNode this process runs under (the nearest ``flower-supernode`` among its
  ancestors) as ``(pid, start time)``; None when there is none (e.g. ``--isolation
  process``, where a separate SuperExec starts the ClientApps: the worker then ends by
  its idle timeout only)."""
  pid = os.getppid()
  for _ in range(32):
    if pid <= 1:
      return None
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
      with open(f"/proc/{pid}/stat") as f:
        parent = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
      return None
    if any(os.path.basename(a.decode(errors="replace")) == "flower-supernode"
           for a in argv[:2]):
      start = W.process_start(pid)
      return None if start is None else (pid, start)
    pid = parent
  return None


def start_worker(node: NodeSettings, directory: str) -> dict:
  """Starts the node's worker in a session of its own (output appended to
  ``worker.log``); its ``worker.json`` once it listens.

  Raises:
    WorkerError: it exited, or did not listen within ``START_SECONDS`` (then it is
      killed), naming the log.
  """
  for process in list(_STARTED):
    if process.poll() is not None:
      _STARTED.remove(process)
  log_path = os.path.join(directory, W.LOG)
  command = [sys.executable, "-m", "fedbbpt_jax.flower.worker", "--dir", directory,
             "--idle-seconds", repr(node.worker_idle_seconds)]
  watch = supernode()
  if watch is not None:
    command += ["--watch-pid", str(watch[0]), "--watch-start", str(watch[1])]
  # The fedbbpt_jax this process runs is the one the worker imports.
  path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)
  with open(log_path, "ab") as log:
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": path})
  _STARTED.append(process)
  deadline = time.monotonic() + START_SECONDS
  while time.monotonic() < deadline:
    info = W.read_info(directory)
    if info is not None and info.get("pid") == process.pid:
      return info
    if process.poll() is not None:
      raise W.WorkerError(f"the node's worker exited with code {process.returncode} as it "
                          f"started; its log: {log_path}")
    time.sleep(0.05)
  process.kill()
  raise W.WorkerError(f"the node's worker did not listen within {START_SECONDS:g} s; its "
                      f"log: {log_path}")


def stop_worker(directory: str, grace: float = 5.0) -> int | None:
  """Stops the worker ``directory``'s ``worker.json`` names, if it runs (SIGTERM, then
  SIGKILL after ``grace`` seconds; by pid and start time), and removes the file; its pid."""
  info = W.read_info(directory)
  pid = None
  if info is not None and W.running(info.get("pid"), info.get("start")):
    pid, start = int(info["pid"]), int(info["start"])
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
      if W.running(pid, start):
        try:
          os.kill(pid, sig)
        except ProcessLookupError:
          pass
      deadline = time.monotonic() + wait
      while W.running(pid, start) and time.monotonic() < deadline:
        for process in _STARTED:
          process.poll()  # reaps it when this process started it
        time.sleep(0.05)
  with contextlib.suppress(FileNotFoundError):
    os.remove(os.path.join(directory, W.INFO))
  return pid


def worker_dirs(workdir: str) -> list[str]:
  """The worker folders under node workdir ``workdir``."""
  return sorted(glob.glob(os.path.join(glob.escape(workdir), "worker-*")))


def worker_pids(workdir: str) -> list[int]:
  """The pids of the workers running for node workdir ``workdir``."""
  infos = [W.read_info(d) or {} for d in worker_dirs(workdir)]
  return [int(i["pid"]) for i in infos if W.running(i.get("pid"), i.get("start"))]


def stop_workers(workdir: str) -> list[int]:
  """Stops every worker of node workdir ``workdir``; the pids stopped."""
  return [pid for d in worker_dirs(workdir) if (pid := stop_worker(d)) is not None]
