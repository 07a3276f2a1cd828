"""Test-session setup: a persistent XLA compilation cache shared by all tests.

Many tests build the same frozen black box and round functions; the cache makes
every compile after the first a disk read. It lives in a fresh temporary folder.
"""

import tempfile

import jax

jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="fedbbpt_xla_cache_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
