"""The real model service serving a tiny test model, loaded the way a user loads theirs.

``python -m fedbbpt_jax.serve --imports=tests.helpers.tiny_plugins --model=tiny_bert``:
the service imports the plugin module, which registers ``tiny_cnn`` and ``tiny_bert``
(``tests/helpers/tiny_models.py``) as black boxes; the service serves any registered
black box by name. Service tests that check plumbing (wire, keys, metering, remote ==
local runs) start this one, so the service and the runs they compare compile in a
fraction of the real models' time.

Example:
    >>> with tiny_service_process(tiny_models.TEXT, extra_args=("--max_length=24",)) as s:
    ...   RemoteBlackBox(s.url)
"""

import os

from fedbbpt_jax.serve.process import ServiceProcess

PLUGINS = "tests.helpers.tiny_plugins"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_service_process(model: str, env: dict[str, str] | None = None,
                         extra_args: tuple[str, ...] = (), **kwargs) -> ServiceProcess:
  """A ``ServiceProcess`` serving ``model`` with ``--imports`` of the tiny models
  (importable from any working directory)."""
  path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)
  return ServiceProcess(model=model, env={**(env or {}), "PYTHONPATH": path},
                        extra_args=(f"--imports={PLUGINS}", *extra_args), **kwargs)
