"""Black boxes: the model reached only through its outputs, with query accounting."""

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.meter import QueryBudgetExceeded, QueryMeter
from fedbbpt_jax.blackbox.remote import (RemoteBlackBox, RemoteBlackBoxError,
                                         RemoteBudgetExceeded, RetryPolicy)
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox

__all__ = ["BlackBox", "QueryBudgetExceeded", "QueryMeter", "RemoteBlackBox",
           "RemoteBlackBoxError", "RemoteBudgetExceeded", "RetryPolicy", "SurrogateBlackBox"]
