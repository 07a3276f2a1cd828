"""fedbbpt_jax: federated black-box prompt tuning (Fed-BBPT) in JAX.

The subpackages are layered (``LAYERS`` below, the one statement of the order): a
module imports modules of its own subpackage, of another subpackage of its layer, or of
lower layers, never higher ones. ``tests/test_architecture.py`` enforces it, and checks
that the table in ``docs/design.md`` says the same.

Frozen weights are passed to compiled programs as arguments, not compiled in: a frozen
black box closes over its weights (``SurrogateBlackBox``), and JAX would otherwise embed
them in every program that calls it as constants (17-79 MB per program for
EfficientNet-Lite0 and MiniLM: slow compiles, huge compilation-cache entries). JAX's
``jax_use_simplified_jaxpr_constants`` (the announced future default) hoists such
constants into arguments; it is switched on here unless the environment variable
``JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS`` says otherwise. JAX reads part of that setting
when it is imported, so it takes full effect only if ``fedbbpt_jax`` is imported before
``jax`` (as the command lines do) or the variable is set: a process that imported ``jax``
first gets a warning saying so.
"""

import os as _os
import sys as _sys
import warnings as _warnings

if "JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS" not in _os.environ:
  _os.environ["JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS"] = "true"  # read when jax is imported
  _jax = _sys.modules.get("jax")  # already imported: set it directly (no import here, so
  if _jax is not None and hasattr(_jax.config, "jax_use_simplified_jaxpr_constants"):
    _jax.config.update("jax_use_simplified_jaxpr_constants", True)  # ClientApps stay light)
    _warnings.warn(
        "jax was imported before fedbbpt_jax: frozen model weights will be compiled into "
        "programs as constants (slower compiles, larger compilation caches). Import "
        "fedbbpt_jax first, or set JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS=true before importing "
        "jax.", stacklevel=2)

__version__ = "0.1.0"

# Subpackage -> layer (0 is the bottom).
LAYERS = {"core": 0, "data": 1, "models": 1, "blackbox": 2, "prompts": 3, "zo": 3,
          "parallel": 3, "serve": 3, "tasks": 4, "federated": 4, "train": 5, "flower": 6}
