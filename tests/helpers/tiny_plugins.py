"""Importing this module registers the tiny test models (``tests/helpers/tiny_models.py``).

It is what a user's plugin module is: the service and the launchers import it with
``--imports=tests.helpers.tiny_plugins``, after which ``tiny_cnn`` / ``tiny_bert`` are
names a config or ``--model`` may use.
"""

from tests.helpers import tiny_models

tiny_models.register()
