"""A whole deployment on one machine: a SuperLink, SuperNodes, ``flwr run``, as processes.

Used by the integration tests and ``make flower-demo`` (``main``, whose temporary Flower
home, API keys included, is removed at the end, also on failure); the same commands,
with TLS and real addresses, are what a multi-machine run uses (docs/flower.md,
docs/deployment/flower.md). Every process is started in its own session and stopped by its PID (its
whole process group: the ServerApp and ClientApp processes Flower spawns go with it); the
nodes' workers (``worker.py``, in sessions of their own) are stopped by the pids their
``worker.json`` records.
Flower's home directory (``FLWR_HOME``) is the one given; telemetry and the update
check are off.

Example::

    with LoopbackFederation(home, [{"partition-id": 0}, {"partition-id": 1}]) as fed:
      result = fed.run(APP_DIR, {"workdir": "/tmp/run1"})
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterator, Mapping, Sequence

from fedbbpt_jax.serve.process import LOOPBACK, free_port

APP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "experiments", "flower_app")
FEDERATION = "loopback"
QUIET_FLOWER = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
SERVERAPP_FAILED = "An unhandled exception occurred in the ServerApp"


def toml_items(values: Mapping[str, Any]) -> str:
  """``k=v`` items in TOML syntax (strings quoted), space separated."""
  def value(v):
    if isinstance(v, bool):
      return "true" if v else "false"
    if isinstance(v, (int, float)):
      return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
  return " ".join(f"{k}={value(v)}" for k, v in values.items())


def flower_binary(name: str) -> str:
  """A Flower command installed beside this Python (the project's environment)."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  return path if os.path.exists(path) else name


def wait_for_port(port: int, process: subprocess.Popen, log_path: str,
                  timeout: float = 60.0) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f"process exited with code {process.returncode}; log {log_path}:\n"
                         + tail(log_path))
    with socket.socket() as s:
      if s.connect_ex((LOOPBACK, port)) == 0:
        return
    time.sleep(0.1)
  raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout:g} s; log "
                     f"{log_path}:\n" + tail(log_path))


def tail(path: str, lines: int = 30) -> str:
  try:
    with open(path, errors="replace") as f:
      return "".join(f.readlines()[-lines:])
  except OSError:
    return ""


def descendants(pid: int) -> list[int]:
  """Every live descendant of ``pid`` (Flower detaches some children into new sessions)."""
  children: dict[int, list[int]] = {}
  for entry in os.listdir("/proc"):
    if entry.isdigit():
      try:
        with open(f"/proc/{entry}/stat") as f:
          ppid = int(f.read().rsplit(")", 1)[1].split()[1])
      except (OSError, IndexError, ValueError):
        continue
      children.setdefault(ppid, []).append(int(entry))
  found, todo = [], [pid]
  while todo:
    for child in children.get(todo.pop(), []):
      found.append(child)
      todo.append(child)
  return found


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:  # a zombie has exited
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def stop_group(process: subprocess.Popen | None, grace: float = 5.0) -> None:
  """Stops ``process``, its process group and every descendant (TERM, then KILL after
  ``grace`` seconds), by PID."""
  if process is None:
    return
  pids = [process.pid, *descendants(process.pid)]
  for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
    for pid in pids:
      for kill in (os.killpg, os.kill):
        try:
          kill(pid, sig)
        except (ProcessLookupError, PermissionError):
          pass
    deadline = time.monotonic() + wait
    while True:
      process.poll()
      if not any(_alive(p) for p in pids) or time.monotonic() >= deadline:
        break
      time.sleep(0.1)
    if not any(_alive(p) for p in pids):
      return


class LoopbackFederation:
  """A SuperLink and one SuperNode per node config, on loopback (see module docstring).

  Args:
    home: Flower's home directory (``FLWR_HOME``): the CLI config, installed apps.
    node_configs: one ``--node-config`` mapping per SuperNode.
    env: extra environment variables for every process (e.g. API keys).
  """

  def __init__(self, home: str, node_configs: Sequence[Mapping[str, Any]],
               env: Mapping[str, str] | None = None):
    self.home = os.path.abspath(home)
    self.node_configs = [dict(c) for c in node_configs]
    bin_dir = os.path.dirname(sys.executable)  # Flower starts its helpers from PATH
    self.env = {**os.environ, **QUIET_FLOWER, "FLWR_HOME": self.home, **(env or {}),
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    self.port = free_port()
    self.superlink: subprocess.Popen | None = None
    self.nodes: list[subprocess.Popen | None] = []
    self.logs: dict[str, str] = {}

  def _start(self, name: str, command: list[str]) -> subprocess.Popen:
    """Starts ``command``; its output goes to a new ``<name>[.<n>].log`` (``logs[name]``)."""
    path, n = os.path.join(self.home, f"{name}.log"), 0
    while os.path.exists(path):
      n += 1
      path = os.path.join(self.home, f"{name}.{n}.log")
    self.logs[name] = path
    with open(path, "ab") as log:
      return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                              cwd=self.home, start_new_session=True)

  def start(self) -> "LoopbackFederation":
    """Starts the SuperLink, then every SuperNode side by side; returns once all listen.

    Raises:
      RuntimeError: a process exited or did not listen in time (its log tail attached).
    """
    os.makedirs(self.home, exist_ok=True)
    with open(os.path.join(self.home, "config.toml"), "w") as f:
      f.write(f'[superlink]\ndefault = "{FEDERATION}"\n\n[superlink.{FEDERATION}]\n'
              f'address = "{LOOPBACK}:{self.port}"\ninsecure = true\n')
    self.superlink = self._start("superlink", [
        flower_binary("flower-superlink"), "--insecure", "--host", LOOPBACK, "--port",
        str(self.port), "--disable-runtime-dependency-installation"])
    wait_for_port(self.port, self.superlink, self.logs["superlink"])
    self.nodes = [None] * len(self.node_configs)
    ports = [self._spawn_node(i) for i in range(len(self.node_configs))]  # side by side
    for i, port in enumerate(ports):
      wait_for_port(port, self.nodes[i], self.logs[f"supernode{i}"])
    return self

  def _spawn_node(self, i: int) -> int:
    """Starts SuperNode ``i`` without waiting for it; the port it will listen on."""
    port = free_port()
    self.nodes[i] = self._start(f"supernode{i}", [
        flower_binary("flower-supernode"), "--insecure", "--superlink",
        f"{LOOPBACK}:{self.port}", "--host", LOOPBACK, "--port", str(port), "--node-config",
        toml_items(self.node_configs[i])])
    return port

  def start_node(self, i: int) -> subprocess.Popen:
    """(Re)starts SuperNode ``i`` (a restarted node registers under a new node id)."""
    port = self._spawn_node(i)
    wait_for_port(port, self.nodes[i], self.logs[f"supernode{i}"])
    return self.nodes[i]

  def kill_node(self, i: int) -> None:
    """Kills SuperNode ``i``, its ClientApp processes and its worker at once (SIGKILL), as
    when its machine goes down."""
    stop_group(self.nodes[i], grace=0.0)
    self.stop_workers([i], grace=0.0)

  def node_workdirs(self, indices: Sequence[int] | None = None) -> list[str]:
    """The workdirs of the nodes ``indices`` (all by default), as their node configs say."""
    from fedbbpt_jax.flower.settings import node_settings  # pylint: disable=import-outside-toplevel
    indices = range(len(self.node_configs)) if indices is None else indices
    return [node_settings(self.node_configs[i]).workdir for i in indices]

  def stop_workers(self, indices: Sequence[int] | None = None, grace: float = 5.0) -> None:
    """Stops the workers of the nodes ``indices`` (all by default): started in sessions
    of their own, they outlive their SuperNode's process group (``worker.py``)."""
    from fedbbpt_jax.flower import worker_client  # pylint: disable=import-outside-toplevel
    for workdir in self.node_workdirs(indices):
      for directory in worker_client.worker_dirs(workdir):
        worker_client.stop_worker(directory, grace=grace)

  def run(self, run_config: Mapping[str, Any], app_dir: str = APP_DIR,
          timeout: float = 600.0) -> subprocess.CompletedProcess:
    """``flwr run APP_DIR loopback --stream --run-config ...``; waits for the run to end.

    Raises:
      RuntimeError: the command failed (its output attached).
    """
    command = [flower_binary("flwr"), "run", app_dir, FEDERATION, "--stream",
               "--run-config", toml_items(run_config)]
    result = subprocess.run(command, capture_output=True, text=True, env=self.env,
                            cwd=self.home, timeout=timeout)
    # `flwr run --stream` exits 0 even when the ServerApp raised: read its streamed log.
    failed = SERVERAPP_FAILED in result.stdout or SERVERAPP_FAILED in result.stderr
    if result.returncode or failed:
      raise RuntimeError(f"flwr run {'failed' if failed else f'exited with {result.returncode}'}"
                         f":\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result

  def start_run(self, run_config: Mapping[str, Any], app_dir: str = APP_DIR
                ) -> subprocess.Popen:
    """``flwr run`` in the background (e.g. to kill a node while the run goes on)."""
    path = os.path.join(self.home, f"flwr_run_{len(self.logs)}.log")
    self.logs[f"run{len(self.logs)}"] = path
    with open(path, "ab") as log:
      return subprocess.Popen([flower_binary("flwr"), "run", app_dir, FEDERATION, "--stream",
                               "--run-config", toml_items(run_config)], stdout=log,
                              stderr=subprocess.STDOUT, env=self.env, cwd=self.home,
                              start_new_session=True)

  def stop(self) -> None:
    """Stops every SuperNode (by its process group) and its worker, then the SuperLink."""
    for node in self.nodes:
      stop_group(node)
    self.stop_workers()
    stop_group(self.superlink)

  def pids(self) -> list[int]:
    """The SuperLink's, the SuperNodes' and their running workers' pids."""
    from fedbbpt_jax.flower import worker_client  # pylint: disable=import-outside-toplevel
    workers = [pid for workdir in self.node_workdirs()
               for pid in worker_client.worker_pids(workdir)]
    return [p.pid for p in [self.superlink, *self.nodes] if p is not None] + workers

  def __enter__(self) -> "LoopbackFederation":
    try:
      return self.start()
    except BaseException:
      self.stop()
      raise

  def __exit__(self, *exc) -> None:
    self.stop()


@contextlib.contextmanager
def demo_home(nodes: int) -> Iterator[tuple[str, str, dict[str, str]]]:
  """A fresh temporary Flower home holding the provider's API keys (``keys.json``: one
  key per node and one for the server, readable by the owner only), for ``main``.

  Yields ``(home, keys_path, env)``, ``env`` naming each party's key variable. The home,
  the keys file and everything the deployment wrote there (logs, the nodes' workdirs)
  are removed when the block ends, also when it raises.
  """
  home = tempfile.mkdtemp(prefix="fedbbpt_flower_")
  try:
    keys = {"server-key": None, **{f"node-key-{i}": None for i in range(nodes)}}
    keys_path = os.path.join(home, "keys.json")
    with os.fdopen(os.open(keys_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
      json.dump(keys, f)
    env = {"FEDBBPT_SERVER_KEY": "server-key",
           **{f"FEDBBPT_NODE_KEY_{i}": f"node-key-{i}" for i in range(nodes)}}
    yield home, keys_path, env
  finally:
    shutil.rmtree(home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
  """``python -m fedbbpt_jax.flower.loopback``: a whole deployment on this machine.

  Starts the model provider service (one API key per node and one for the server), a
  SuperLink and one SuperNode per client, runs the experiment with ``flwr run``, prints
  its output and stops every process. The temporary Flower home with the keys file is
  removed at the end, also when the run fails (``demo_home``); the server's
  ``--workdir`` stays.
  """
  import argparse

  from fedbbpt_jax.flower.settings import load_config
  from fedbbpt_jax.serve.process import ServiceProcess

  parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
  parser.add_argument("--config", default="configs/fmnist_effnet.py:smoke")
  parser.add_argument("--overrides", default="", help='e.g. "client.upload=seeds"')
  parser.add_argument("--workdir", required=True, help="the server's run directory")
  parser.add_argument("--round_timeout", type=float, default=600.0)
  args = parser.parse_args(argv)
  config = load_config(args.config, args.overrides)
  nodes = int(config.data.num_clients)
  size = int(config.blackbox.get("input_size", 64))
  extra = (f"--max_length={config.blackbox.max_length}",) if "max_length" in config.blackbox \
      else ()
  with demo_home(nodes) as (home, keys_path, env), ServiceProcess(
      model=config.blackbox.model, input_size=size, keys_path=keys_path, max_batch=64,
      extra_args=extra) as service:
    node_configs = [{"partition-id": i, "workdir": os.path.join(home, f"node{i}"),
                     "blackbox-url": service.url, "api-key-env": f"FEDBBPT_NODE_KEY_{i}"}
                    for i in range(nodes)]
    print(f"provider {service.url}; Flower home {home} (removed at the end); {nodes} "
          "SuperNodes", flush=True)
    t0 = time.time()
    with LoopbackFederation(home, node_configs, env=env) as fed:
      result = fed.run({"config": args.config, "workdir": os.path.abspath(args.workdir),
                        "round-timeout": args.round_timeout,
                        "overrides": f"{args.overrides} blackbox.url={service.url} "
                                     "blackbox.api_key_env=FEDBBPT_SERVER_KEY"})
    print("\n".join(line for line in result.stdout.splitlines()
                    if "INFO" not in line and "DEBUG" not in line), flush=True)
    print(f"loopback deployment: {time.time() - t0:.1f} s wall (processes started and "
          "stopped)", flush=True)


if __name__ == "__main__":
  main()
