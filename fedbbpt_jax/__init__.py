"""fedbbpt_jax: federated black-box prompt tuning (Fed-BBPT) in JAX.

Layers, from the bottom up (a layer imports only the ones below it):
``data`` -> ``models`` -> ``blackbox`` -> ``prompts`` -> ``zo`` -> ``parallel``
-> ``federated`` -> ``tasks`` -> ``train`` (``tests/test_architecture.py`` states it).

Frozen weights are passed to compiled programs as arguments, not compiled in: a frozen
black box closes over its weights (``SurrogateBlackBox``), and JAX would otherwise embed
them in every program that calls it as constants (17-79 MB per program for
EfficientNet-Lite0 and MiniLM: slow compiles, huge compilation-cache entries). JAX's
``jax_use_simplified_jaxpr_constants`` (the announced future default) hoists such
constants into arguments; it is switched on here unless the environment variable
``JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS`` says otherwise.
"""

import os as _os
import sys as _sys

if "JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS" not in _os.environ:
  _os.environ["JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS"] = "true"  # read when jax is imported
  _jax = _sys.modules.get("jax")  # already imported: set it directly (no import here, so
  if _jax is not None and hasattr(_jax.config, "jax_use_simplified_jaxpr_constants"):
    _jax.config.update("jax_use_simplified_jaxpr_constants", True)  # ClientApps stay light)

__version__ = "0.1.0"
