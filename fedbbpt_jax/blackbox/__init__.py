"""Black boxes: the model reached only through its outputs, with query accounting."""

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.meter import QueryBudgetExceeded, QueryMeter
from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.blackbox.remote import (RemoteBlackBox, RemoteBlackBoxError,
                                         RemoteBudgetExceeded, RetryPolicy)
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead, templates_from_spec

# The bundled models register themselves in BLACK_BOXES (image, text, llm).
from fedbbpt_jax.blackbox import clip_zoo, llm_zoo, text_zoo, zoo  # noqa: E402,F401  isort: skip

__all__ = ["BLACK_BOXES", "BlackBox", "QueryBudgetExceeded", "QueryMeter", "RemoteBlackBox",
           "RemoteBlackBoxError", "RemoteBudgetExceeded", "RetryPolicy", "SurrogateBlackBox",
           "ZeroShotHead", "templates_from_spec"]
