"""The model service with the tiny test models registered too, as a real process.

``python -m tests.helpers.tiny_service --model=tiny_bert --max_length=24`` is
``python -m fedbbpt_jax.serve`` plus ``tiny_cnn`` and ``tiny_bert``
(``tests/helpers/tiny_models.py``), served by the library's own builders the way a user
serves their own model: register it, then run the service's command line. Service tests
that check plumbing (wire, keys, metering, remote == local runs) start this one, so the
service and the runs compare compile in a fraction of the real models' time.

Example:
    >>> with tiny_service_process(tiny_models.TEXT, extra_args=("--max_length=24",)) as s:
    ...   RemoteBlackBox(s.url)
"""

import functools
import os

from fedbbpt_jax.serve.__main__ import main
from fedbbpt_jax.serve.models import (SERVED_MODELS, register_model, served_image_classifier,
                                      served_text_encoder)
from fedbbpt_jax.serve.process import ServiceProcess
from tests.helpers import tiny_models

MODULE = "tests.helpers.tiny_service"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def register() -> None:
  """Registers the tiny models as black boxes and as served models (once per process)."""
  tiny_models.register()
  if tiny_models.IMAGE not in SERVED_MODELS:
    register_model(tiny_models.IMAGE)(functools.partial(served_image_classifier,
                                                        tiny_models.IMAGE))
  if tiny_models.TEXT not in SERVED_MODELS:
    register_model(tiny_models.TEXT)(functools.partial(served_text_encoder, tiny_models.TEXT))


def tiny_service_process(model: str, env: dict[str, str] | None = None,
                         **kwargs) -> ServiceProcess:
  """A ``ServiceProcess`` of this module serving ``model`` (importable from any cwd)."""
  path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)
  return ServiceProcess(model=model, module=MODULE, env={**(env or {}), "PYTHONPATH": path},
                        **kwargs)


if __name__ == "__main__":
  register()
  main()
