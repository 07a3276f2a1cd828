"""fedbbpt_jax: federated black-box prompt tuning (Fed-BBPT) in JAX.

Layers, from the bottom up (a layer imports only the ones below it):
``data`` -> ``models`` -> ``blackbox`` -> ``prompts`` -> ``zo`` -> ``parallel``
-> ``federated`` -> ``tasks`` -> ``train``. See DESIGN.md in the shared folder.
"""

__version__ = "0.1.0"
