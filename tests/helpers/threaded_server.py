"""A real uvicorn server for an ASGI app on a free loopback port, in a thread of the test
process (the chat service tests; the image service runs as a process, ``ServiceProcess``)."""

import contextlib
import threading
import time

import uvicorn

from fedbbpt_jax.serve.process import LOOPBACK, free_port


@contextlib.contextmanager
def serving(app, startup_timeout: float = 30.0):
  """Yields the base URL while ``app`` serves on loopback; stops the server on exit."""
  port = free_port()
  server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.monotonic() + startup_timeout
  while not server.started:
    if time.monotonic() > deadline or not thread.is_alive():
      raise RuntimeError(f"the test server did not start on port {port}")
    time.sleep(0.05)
  try:
    yield f"http://{LOOPBACK}:{port}"
  finally:
    server.should_exit = True
    thread.join(timeout=10)
