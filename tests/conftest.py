"""Test-session setup: one XLA compilation cache per test run, heaviest files first, tiers.

* **One compile cache for the whole run.** The first process of a run (the pytest
  controller, or a plain ``pytest``) makes a temporary folder and exports it as
  ``JAX_COMPILATION_CACHE_DIR``; every pytest-xdist worker and every subprocess a test
  starts (CLI runs, model services, Flower SuperNodes) inherits it, so a program compiled
  once anywhere in the run is a disk read everywhere else. The folder is removed when
  that first process exits (left behind, they once filled a 250 GB disk). Set
  ``FEDBBPT_TEST_XLA_CACHE=DIR`` to keep one across runs (edit-test loops).
* **Heaviest files first.** ``make test`` gives each worker whole files
  (``--dist loadfile``) in collection order; the files are ordered by their measured
  worker-seconds (``tests/durations.json``, refreshed by ``python -m
  tests.helpers.durations``), so the long files start at once and the short ones fill
  the tail.
* **Tiers** (markers, ``pytest.ini``): ``slow`` (deployments, multi-process runs, CLI
  subprocesses, real-model learning runs, and every test of a file measured at more than
  ``QUICK_FILE_SECONDS`` worker-seconds in ``tests/durations.json``) is left out by
  ``make test-quick``; ``demo`` (the demo configuration on three seeds, about 6
  CPU-minutes) is a tier of its own: ``make test-demo`` runs it, ``make test`` does not.
* **Compile effort per file.** Most files test mechanics on small programs, where XLA's
  optimisation passes cost more than they save: they compile with JAX's
  ``jax_disable_most_optimizations`` (and export it to the subprocesses their tests
  start). A file with a ``learning`` or ``demo`` test runs real models long enough that
  optimised code wins, and compiles fully. Measured on the whole suite, one run each way:
  mechanics files 20-45% fewer worker-seconds (``test_query_counts`` 107 -> 74 s), the
  learning files 40-80% more unoptimised (``test_run`` 107 -> 191 s). Reduced effort also
  turns XLA:CPU's fusion emitters off (the older emitters compile the same programs in
  about half the time: ``test_seed_uploads`` 13.0 -> 8.9 s, ``test_instruction_bo`` 26 ->
  16 s); the learning files keep them, since their numbers differ in the last bits under
  the other emitters (the README's demo figures are the default emitters'). Results do not
  depend on it: the whole suite also passes with every file unoptimised.
  ``FEDBBPT_TEST_FULL_COMPILE=1`` compiles every file fully.
* **Perturbed learning mode.** ``FEDBBPT_TEST_PERTURB=1`` makes every ``learning``
  test run its seeds as another CPU would (``perturbation()``): relative noise of 1e-6
  on the initial prompt parameters and other seeds; ``make test-extended`` runs the
  learning tests that way.
"""

import atexit
import json
import os
import shutil
import tempfile

import pytest

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
if os.environ.get("FEDBBPT_TEST_XLA_CACHE"):
  os.environ[_CACHE_ENV] = os.environ["FEDBBPT_TEST_XLA_CACHE"]
elif not os.environ.get(_CACHE_ENV):
  _cache_dir = tempfile.mkdtemp(prefix="fedbbpt_xla_cache_")
  os.environ[_CACHE_ENV] = _cache_dir
  atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
# Read by JAX at import, here and in every subprocess: cache every compilation.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Frozen weights as program arguments, not constants (``fedbbpt_jax/__init__.py``): JAX
# reads part of this setting at import, and jax is imported here before fedbbpt_jax.
os.environ.setdefault("JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS", "true")

import jax  # pylint: disable=wrong-import-position

jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

_DURATIONS = os.path.join(os.path.dirname(__file__), "durations.json")
_UNKNOWN_FILE_SECONDS = 10.0  # a file not yet measured goes among the medium ones
QUICK_FILE_SECONDS = 11.0     # heavier files are `slow`: make test-quick leaves them out


# Files that compile fully (a ``learning`` or ``demo`` test in them), found at collection.
_FULL_COMPILE_FILES: set[str] = set()
_OPT_ENV = "JAX_DISABLE_MOST_OPTIMIZATIONS"
# Reduced effort also turns XLA:CPU's fusion emitters off (the older elemental emitters
# compile the same programs in about half the time): per compilation here, through the
# compile options JAX passes to XLA while ``jax_disable_most_optimizations`` is on, and for
# the subprocesses through their XLA_FLAGS.
_LEGACY_EMITTERS = "xla_cpu_use_fusion_emitters"
_LEGACY_EMITTERS_FLAG = f"--{_LEGACY_EMITTERS}=false"


def _reduced_effort_compile_options(get_compile_options):
  """Wraps JAX's ``compiler.get_compile_options`` to add the emitter option at reduced
  effort (the options are part of the compile-cache key, so the two never mix)."""

  def wrapped(*args, env_options_overrides=None, **kwargs):
    if jax.config.read("jax_disable_most_optimizations"):
      env_options_overrides = {_LEGACY_EMITTERS: False, **(env_options_overrides or {})}
    return get_compile_options(*args, env_options_overrides=env_options_overrides, **kwargs)

  return wrapped


def _install_reduced_effort_options():
  """Installs the wrapper where JAX's lowering calls it (jax 0.10; elsewhere the reduced
  effort is just ``jax_disable_most_optimizations``)."""
  try:
    from jax._src import compiler  # pylint: disable=import-outside-toplevel
  except ImportError:
    return
  if hasattr(compiler, "get_compile_options"):
    compiler.get_compile_options = _reduced_effort_compile_options(compiler.get_compile_options)


_install_reduced_effort_options()
# This process's backend reads XLA_FLAGS once, when it starts: start it now, before
# ``_compile_effort`` sets the subprocesses' flags in the environment.
jax.devices()


def _with_xla_flag(flags: str, flag: str, on: bool) -> str:
  """``flags`` (an XLA_FLAGS value) with ``flag`` present or absent."""
  kept = [f for f in flags.split() if f != flag]
  return " ".join(kept + ([flag] if on else []))


@pytest.fixture(scope="module", autouse=True)
def _compile_effort(request):
  """Sets the file's compile effort before its module fixtures (see the module docstring)."""
  path = request.node.nodeid.split("::")[0]
  reduced = (path not in _FULL_COMPILE_FILES
             and os.environ.get("FEDBBPT_TEST_FULL_COMPILE", "") != "1")
  previous = {name: os.environ.get(name) for name in (_OPT_ENV, "XLA_FLAGS")}
  os.environ[_OPT_ENV] = "1" if reduced else "0"
  os.environ["XLA_FLAGS"] = _with_xla_flag(previous["XLA_FLAGS"] or "", _LEGACY_EMITTERS_FLAG,
                                           reduced)
  jax.config.update("jax_disable_most_optimizations", reduced)
  yield
  for name, value in previous.items():
    if value is None:
      os.environ.pop(name, None)
    else:
      os.environ[name] = value
  jax.config.update("jax_disable_most_optimizations", False)


def pytest_collection_modifyitems(config, items):
  """Orders the files by measured worker-seconds, heaviest first (stable within a file),
  marks the tests of the heavy files ``slow``, and notes the files that compile fully."""
  del config
  for item in items:
    if item.get_closest_marker("learning") or item.get_closest_marker("demo"):
      _FULL_COMPILE_FILES.add(item.nodeid.split("::")[0])
  try:
    with open(_DURATIONS) as f:
      seconds = json.load(f)
  except (OSError, ValueError):
    return
  order = {}
  for item in items:
    path = item.nodeid.split("::")[0]
    order.setdefault(path, (-seconds.get(path, _UNKNOWN_FILE_SECONDS), len(order)))
    if seconds.get(path, 0.0) > QUICK_FILE_SECONDS:
      item.add_marker(pytest.mark.slow)
  items.sort(key=lambda item: order[item.nodeid.split("::")[0]])
