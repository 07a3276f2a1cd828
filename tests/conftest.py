"""Test-session setup: a persistent XLA compilation cache shared by all tests.

Many tests build the same frozen black box and round functions; the cache makes
every compile after the first a disk read. It lives in a fresh temporary folder (one
per pytest process), removed when the process exits: each session writes up to ~2 GB,
and left behind they once filled a 250 GB disk.
"""

import atexit
import shutil
import tempfile

import jax

CACHE_DIR = tempfile.mkdtemp(prefix="fedbbpt_xla_cache_")
atexit.register(shutil.rmtree, CACHE_DIR, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
