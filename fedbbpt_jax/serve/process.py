"""Starts the service in a subprocess on a free loopback port (tests, benchmarks, demos).

Example:
  >>> with ServiceProcess(input_size=32, max_batch=16) as service:
  ...   bb = RemoteBlackBox(service.url)
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import httpx

LOOPBACK = "127.0.0.1"


def free_port() -> int:
  """A TCP port free on the loopback interface right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((LOOPBACK, 0))
    return s.getsockname()[1]


class ServiceProcess:
  """``python -m fedbbpt_jax.serve`` in a child process, stopped on exit.

  Args:
    model: registered model name.
    input_size: side of square image inputs.
    max_batch: most examples per request.
    keys_path: key file ('' = open service).
    port: port to bind (default: a free one; kept across ``restart``).
    extra_args: more command-line options.
    env: extra environment variables (e.g. ``JAX_COMPILATION_CACHE_DIR``).
    start_timeout: seconds to wait for ``/v1/info`` to answer.
    tls: ``(certfile, keyfile, ca_file)``: serve HTTPS with that certificate; ``/v1/info``
      is polled verifying it against ``ca_file``.
    module: the module run with ``python -m``: the service itself, or a script that
      registers more models (``BLACK_BOXES``) and then calls
      ``fedbbpt_jax.serve.__main__.main``.
  """

  def __init__(self, model: str = "efficientnet_lite0", input_size: int = 32,
               max_batch: int = 16, keys_path: str = "", port: int | None = None,
               extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
               start_timeout: float = 120.0, tls: tuple[str, str, str] | None = None,
               module: str = "fedbbpt_jax.serve"):
    self.port = port or free_port()
    self.url = f"{'https' if tls else 'http'}://{LOOPBACK}:{self.port}"
    self.verify = ssl.create_default_context(cafile=tls[2]) if tls else True
    self.command = [sys.executable, "-m", module, f"--model={model}",
                    f"--host={LOOPBACK}", f"--port={self.port}", f"--input_size={input_size}",
                    f"--max_batch={max_batch}", *extra_args]
    if tls:
      self.command += [f"--ssl_certfile={tls[0]}", f"--ssl_keyfile={tls[1]}"]
    if keys_path:
      self.command.append(f"--keys={keys_path}")
    self.env = {**os.environ, **(env or {})}
    self.start_timeout = start_timeout
    self.log_path = tempfile.mkstemp(prefix="fedbbpt_serve_", suffix=".log")[1]
    self.process: subprocess.Popen | None = None

  def start(self) -> "ServiceProcess":
    """Starts the process and waits until ``/v1/info`` answers.

    Raises:
      RuntimeError: the process exited or did not answer in time (with its log tail).
    """
    log = open(self.log_path, "ab")
    self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                    env=self.env, start_new_session=True)
    log.close()
    deadline = time.monotonic() + self.start_timeout
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f"service exited with code {self.process.returncode}:\n"
                           f"{self.log_tail()}")
      try:
        if httpx.get(self.url + "/v1/info", timeout=2.0, verify=self.verify).status_code == 200:
          return self
      except httpx.TransportError:
        pass
      time.sleep(0.1)
    self.stop()
    raise RuntimeError(f"service did not answer within {self.start_timeout}s:\n{self.log_tail()}")

  def kill(self) -> None:
    """Kills the process abruptly (SIGKILL), as a crash would."""
    if self.process is not None and self.process.poll() is None:
      self.process.send_signal(signal.SIGKILL)
      self.process.wait()

  def stop(self) -> None:
    """Stops the process (SIGTERM, then SIGKILL after 10 s)."""
    if self.process is None or self.process.poll() is not None:
      return
    self.process.terminate()
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self.kill()

  def restart(self) -> "ServiceProcess":
    """Kills the process and starts a new one on the same port."""
    self.kill()
    return self.start()

  def log_tail(self, chars: int = 3000) -> str:
    with open(self.log_path, errors="replace") as f:
      return f.read()[-chars:]

  def __enter__(self) -> "ServiceProcess":
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()
    if exc[0] is None and os.path.exists(self.log_path):
      os.remove(self.log_path)   # kept when the block failed, for its log tail
