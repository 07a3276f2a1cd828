"""The loopback deployments' server plugin (run config ``imports``): the tiny test models,
and the deployed datasets without their training splits (``split_guard.guard``)."""

from tests.helpers import split_guard, tiny_plugins  # noqa: F401  (registers the models)

REPLACED = split_guard.guard()
