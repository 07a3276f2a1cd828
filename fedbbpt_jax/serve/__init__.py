"""The model provider's HTTP service: a frozen model behind keys, budgets and limits.

Start it with ``python -m fedbbpt_jax.serve --model=efficientnet_lite0 --port=8000``;
see ``app.py`` for the endpoints and ``keys.py`` for the key file.
"""

from fedbbpt_jax.serve.app import create_app
from fedbbpt_jax.serve.batching import BucketedForward, batch_buckets
from fedbbpt_jax.serve.keys import KeyStore
from fedbbpt_jax.serve.models import ServedModel, build_served_model, servable_models

__all__ = ["BucketedForward", "KeyStore", "ServedModel", "batch_buckets",
           "build_served_model", "create_app", "servable_models"]
