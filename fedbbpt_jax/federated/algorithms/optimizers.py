"""Client and server optimizer registries (optax transformations by config name).

Client optimizers transform a zero-order estimate into a direction before the
``-lr_t`` step (``client.optimizer``); server optimizers act on the pseudo-gradient
``-aggregate(deltas)`` (``server.optimizer``). Users add entries with
``CLIENT_OPTIMIZERS.register(name, build)`` / ``SERVER_OPTIMIZERS.register(...)``.
"""

from __future__ import annotations

from typing import Callable

import optax

from fedbbpt_jax.core import Registry

# build(weight_decay) -> transformation with learning rate 1 (the schedule is HParams').
CLIENT_OPTIMIZERS: Registry[Callable[[float], optax.GradientTransformation]] = Registry(
    "client optimizer", home="fedbbpt_jax.federated.algorithms.optimizers.CLIENT_OPTIMIZERS")
# build(learning_rate, momentum) -> transformation of the pseudo-gradient.
SERVER_OPTIMIZERS: Registry[Callable[[float, float], optax.GradientTransformation]] = Registry(
    "server optimizer", home="fedbbpt_jax.federated.algorithms.optimizers.SERVER_OPTIMIZERS")

# The estimate as it is (SPSA/SPSA-GC as in BlackVIP).
CLIENT_OPTIMIZERS.register("sgd", lambda weight_decay: optax.identity())
# Adam moments, reset every round (stateless clients).
CLIENT_OPTIMIZERS.register("adam", lambda weight_decay: optax.scale_by_adam())
# Adam plus decoupled weight decay ``weight_decay * params`` (BDPL).
CLIENT_OPTIMIZERS.register("adamw", lambda weight_decay: optax.chain(
    optax.scale_by_adam(), optax.add_decayed_weights(weight_decay)))

# 'sgd' with learning rate 1 is plain FedAvg; 'momentum' is FedAvgM; 'adam' is FedAdam.
SERVER_OPTIMIZERS.register("sgd", lambda lr, momentum: optax.sgd(lr))
SERVER_OPTIMIZERS.register("momentum", lambda lr, momentum: optax.sgd(lr, momentum=momentum))
SERVER_OPTIMIZERS.register("adam", lambda lr, momentum: optax.adam(lr))


def make_client_optimizer(name: str, weight_decay: float = 0.0) -> optax.GradientTransformation:
  """The client optimizer registered as ``name`` (learning rate 1)."""
  return CLIENT_OPTIMIZERS.get(name, "client.optimizer")(weight_decay)


def make_server_optimizer(name: str, learning_rate: float = 1.0,
                          momentum: float = 0.9) -> optax.GradientTransformation:
  """The server optimizer registered as ``name`` on the pseudo-gradient ``-mean(delta)``."""
  return SERVER_OPTIMIZERS.get(name, "server.optimizer")(learning_rate, momentum)
